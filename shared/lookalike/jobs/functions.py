"""Job functions: what a worker does for a job id, whichever runner delivered it.

A job row is written (and committed) before the work starts; the result or the error is written once at the
end. Results keep boxes and member scores, never image bytes or the uploader's embedding.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from lookalike.config import Settings
from lookalike.db import repository as repo
from lookalike.db.engine import session_scope
from lookalike.db.models import utcnow
from lookalike.errors import LookalikeError
from lookalike.index.registry import IndexRegistry
from lookalike.pipeline.pipeline import Pipeline
from lookalike.schemas import DiagnoseResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobContext:
    """What a worker process holds: settings, its models and the index versions it serves."""

    settings: Settings
    pipeline: Pipeline
    registry: IndexRegistry


def record_job(settings: Settings, *, job_id: str, kind: str, params: dict[str, Any]) -> None:
    with session_scope(settings.sqlalchemy_url) as session:
        repo.create_job(session, job_id=job_id, kind=kind, params=params)


def diagnose_job(ctx: JobContext, job_id: str, data: bytes, *, group: str | None) -> DiagnoseResult:
    url = ctx.settings.sqlalchemy_url
    with session_scope(url) as session:
        repo.start_job(session, job_id)
    try:
        result = ctx.pipeline.diagnose(data, galleries=ctx.registry.galleries(group))
    except LookalikeError as exc:
        with session_scope(url) as session:
            repo.finish_job(session, job_id, error=exc.to_dict())
        raise
    except Exception as exc:
        log.exception("diagnose job %s failed", job_id)
        with session_scope(url) as session:
            repo.finish_job(session, job_id, error={"code": "internal_error", "message": type(exc).__name__})
        raise
    with session_scope(url) as session:
        repo.finish_job(session, job_id, result=result.model_dump())
    return result


def purge_finished_jobs(settings: Settings) -> int:
    """Forget diagnose results older than the result lifetime."""
    cutoff = utcnow() - timedelta(seconds=settings.result_ttl_s)
    with session_scope(settings.sqlalchemy_url) as session:
        return repo.purge_jobs(session, kind="diagnose", finished_before=cutoff)
