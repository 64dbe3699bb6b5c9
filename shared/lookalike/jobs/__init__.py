"""Runners (in-process now, Celery later) and the job functions both of them call."""
