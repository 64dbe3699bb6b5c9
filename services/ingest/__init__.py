"""Celery ingestion worker (queue "ingest": scrape, upload, reindex): `lookalike ingest-worker`."""
