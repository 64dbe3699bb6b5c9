"""Celery ingestion worker (queue "ingest": reindex now, scraping later): `lookalike ingest-worker`."""
