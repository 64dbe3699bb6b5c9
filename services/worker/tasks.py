"""Celery tasks of the diagnose worker: take a job id, delegate, nothing else."""

from __future__ import annotations

from lookalike.config import get_settings
from lookalike.jobs.celery_app import make_celery
from lookalike.jobs.functions import task_name
from lookalike.jobs.worker import deliver

app = make_celery(get_settings())


@app.task(name=task_name("diagnose"))  # type: ignore[untyped-decorator]
def diagnose(job_id: str) -> str:
    return deliver("diagnose", job_id).status
