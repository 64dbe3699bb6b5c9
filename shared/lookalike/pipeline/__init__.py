"""The diagnosis pipeline stages; `pipeline.py` owns their order."""
