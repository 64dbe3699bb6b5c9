"""Celery tasks of the ingestion worker: take a job id, delegate, nothing else."""

from __future__ import annotations

from lookalike.config import get_settings
from lookalike.jobs.celery_app import make_celery
from lookalike.jobs.functions import task_name, time_limits
from lookalike.jobs.worker import deliver

settings = get_settings()
app = make_celery(settings)
SOFT, HARD = time_limits(settings, "scrape")


@app.task(name=task_name("reindex"), soft_time_limit=SOFT, time_limit=HARD)  # type: ignore[untyped-decorator]
def reindex(job_id: str) -> str:
    return deliver("reindex", job_id).status


@app.task(name=task_name("scrape"), soft_time_limit=SOFT, time_limit=HARD)  # type: ignore[untyped-decorator]
def scrape(job_id: str) -> str:
    return deliver("scrape", job_id).status


@app.task(name=task_name("upload"), soft_time_limit=SOFT, time_limit=HARD)  # type: ignore[untyped-decorator]
def upload(job_id: str) -> str:
    return deliver("upload", job_id).status
