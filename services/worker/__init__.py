"""Celery diagnose worker (queue "diagnose"): `lookalike worker`."""
