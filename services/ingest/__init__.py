"""Celery ingestion worker for the distributed mode (queue "ingest"); arrives with the distributed-mode issue."""
