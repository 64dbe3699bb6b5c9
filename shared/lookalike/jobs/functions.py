"""Job functions: what a worker does with one delivery of a job id, whichever runner delivered it.

The job row is written and committed before any message is sent. Each delivery claims the row, counts an
attempt, and writes the outcome once: a duplicate delivery of a finished job does nothing, and a job whose
deliveries keep killing their worker fails for good after `max_attempts`. Results keep boxes and member scores,
never image bytes or the uploader's embedding.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from lookalike.config import Settings
from lookalike.db import repository as repo
from lookalike.db.engine import session_scope
from lookalike.db.models import utcnow
from lookalike.errors import LookalikeError
from lookalike.index.registry import IndexRegistry
from lookalike.jobs.state import JobState
from lookalike.pipeline.pipeline import Pipeline

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobContext:
    """What a worker process holds: settings, its models and the index versions it serves."""

    settings: Settings
    pipeline: Pipeline
    registry: IndexRegistry


def error_of(exc: LookalikeError) -> dict[str, Any]:
    return {**exc.to_dict(), "status": exc.status}


def record_job(
    settings: Settings, *, job_id: str, kind: str, params: dict[str, Any], lock_key: str | None = None
) -> None:
    """Write the job row (committed when this returns). A live job holding `lock_key` makes this a 409."""
    from sqlalchemy.exc import IntegrityError

    try:
        with session_scope(settings.sqlalchemy_url) as session:
            repo.create_job(session, job_id=job_id, kind=kind, params=params, lock_key=lock_key)
    except IntegrityError:
        raise LookalikeError(
            f"a {kind} job for {lock_key} is already queued or running", code="job_conflict", status=409
        ) from None


def read_job(settings: Settings, job_id: str) -> JobState | None:
    with session_scope(settings.sqlalchemy_url) as session:
        job = repo.get_job(session, job_id)
        return JobState.of(job) if job is not None else None


def finish(
    settings: Settings, job_id: str, *, result: dict[str, Any] | None = None, error: dict[str, Any] | None = None
) -> JobState:
    with session_scope(settings.sqlalchemy_url) as session:
        repo.finish_job(session, job_id, result=result, error=error)
        job = repo.get_job(session, job_id)
        assert job is not None
        session.refresh(job)
        return JobState.of(job)


def begin(settings: Settings, job_id: str) -> tuple[JobState, dict[str, Any] | None]:
    """Claim one delivery. Returns the job's state and, when this delivery should do the work, its params."""
    with session_scope(settings.sqlalchemy_url) as session:
        job = repo.claim_job(session, job_id)
        if job is None:
            raise LookalikeError(f"no job {job_id}", code="not_found", status=404)
        if job.status in ("done", "failed"):
            return JobState.of(job), None
        if job.attempts < settings.max_attempts:
            repo.start_job(session, job)
            return JobState.of(job), dict(job.params)
        attempts = job.attempts
    # Every earlier delivery died without an outcome: this job kills its workers.
    error = {"code": "worker_lost", "message": f"the job stopped its worker {attempts} times", "status": 500}
    return finish(settings, job_id, error=error), None


def run_job(settings: Settings, job_id: str, work: Callable[[dict[str, Any]], dict[str, Any]]) -> JobState:
    """One delivery: claim, run `work(params)`, write the result or the error once."""
    state, params = begin(settings, job_id)
    if params is None:
        return state
    try:
        result = work(params)
    except LookalikeError as exc:
        return finish(settings, job_id, error=error_of(exc))
    except Exception as exc:
        log.exception("%s job %s failed", state.kind, job_id)
        error = {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"[:300], "status": 500}
        return finish(settings, job_id, error=error)
    return finish(settings, job_id, result=result)


def diagnose_work(ctx: JobContext, data: bytes | None) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def work(params: dict[str, Any]) -> dict[str, Any]:
        if data is None:
            raise LookalikeError(
                "the uploaded photo expired or was lost before a worker could read it", code="upload_lost", status=503
            )
        result = ctx.pipeline.diagnose(data, galleries=ctx.registry.galleries(params.get("group")))
        return result.model_dump(mode="json")

    return work


def reindex_work(settings: Settings, model_pack: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    from lookalike.index.builder import reindex_group

    def work(params: dict[str, Any]) -> dict[str, Any]:
        built = reindex_group(settings, str(params["group"]), model_pack=model_pack)
        return {
            "version_id": built.version_id,
            "group": built.group,
            "n_faces": built.n_faces,
            "n_members": built.n_members,
            "threshold": built.threshold,
            "calibration": built.calibration,
        }

    return work


def purge_finished_jobs(settings: Settings) -> int:
    """Forget diagnose results older than the result lifetime."""
    cutoff = utcnow() - timedelta(seconds=settings.result_ttl_s)
    with session_scope(settings.sqlalchemy_url) as session:
        return repo.purge_jobs(session, kind="diagnose", finished_before=cutoff)
