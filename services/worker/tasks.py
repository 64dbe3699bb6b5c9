"""Celery tasks of the diagnose worker: take a job id, delegate, nothing else."""

from __future__ import annotations

from lookalike.config import get_settings
from lookalike.jobs.celery_app import DIAGNOSE_TASK, make_celery
from lookalike.jobs.worker import deliver_diagnose

app = make_celery(get_settings())


@app.task(name=DIAGNOSE_TASK)  # type: ignore[untyped-decorator]
def diagnose(job_id: str) -> str:
    return deliver_diagnose(job_id).status
