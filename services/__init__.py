"""Services built on the shared `lookalike` package: gateway, worker, ingest."""
