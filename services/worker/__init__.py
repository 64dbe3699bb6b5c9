"""Celery diagnose worker for the distributed mode (queue "diagnose"); arrives with the distributed-mode issue."""
