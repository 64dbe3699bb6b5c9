"""Celery tasks of the ingestion worker: take a job id, delegate, nothing else."""

from __future__ import annotations

from lookalike.config import get_settings
from lookalike.jobs.celery_app import REINDEX_TASK, make_celery
from lookalike.jobs.worker import deliver_reindex

app = make_celery(get_settings())


@app.task(name=REINDEX_TASK)  # type: ignore[untyped-decorator]
def reindex(job_id: str) -> str:
    return deliver_reindex(job_id).status
