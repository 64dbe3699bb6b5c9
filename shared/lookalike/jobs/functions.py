"""Job functions: what a worker does with one delivery of a job id, whichever runner delivered it.

The job row is written and committed before any message is sent. Each delivery claims the row, counts an
attempt, and writes the outcome once: a duplicate delivery of a finished job does nothing, and a job whose
deliveries keep killing their worker fails for good after `max_attempts`. Results keep boxes and member scores,
never image bytes or the uploader's embedding.
"""

from __future__ import annotations

import logging
import time
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


Work = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class JobKind:
    """A kind of job: the queue that runs it, the Celery task name, and whether it carries upload bytes."""

    name: str
    queue: str  # "diagnose" (diagnose workers) or "ingest" (the ingestion worker)
    needs_data: bool


KINDS = {
    kind.name: kind
    for kind in (
        JobKind("diagnose", "diagnose", needs_data=True),
        JobKind("reindex", "ingest", needs_data=False),
        JobKind("scrape", "ingest", needs_data=False),
        JobKind("upload", "ingest", needs_data=True),
    )
}


def task_name(kind: str) -> str:
    return f"lookalike.{kind}"


def time_limits(settings: Settings, kind: str) -> tuple[int, int]:
    """(soft, hard) seconds a delivery of `kind` may run."""
    if KINDS[kind].queue == "ingest":
        return settings.ingest_soft_time_limit_s, settings.ingest_time_limit_s
    return settings.task_soft_time_limit_s, settings.task_time_limit_s


def lost_upload() -> LookalikeError:
    return LookalikeError(
        "the uploaded bytes expired or were lost before a worker could read them", code="upload_lost", status=503
    )


def work_for(ctx: JobContext, kind: str, job_id: str, data: bytes | None) -> Work:
    """The function a delivery of `kind` runs on its params (the one dispatch both runners share)."""
    if KINDS[kind].needs_data and data is None:

        def lost(_: dict[str, Any]) -> dict[str, Any]:
            raise lost_upload()

        return lost
    if kind == "diagnose":
        assert data is not None
        return lambda params: ctx.pipeline.diagnose(
            data, galleries=ctx.registry.galleries(params.get("group")), explain=bool(params.get("explain"))
        ).model_dump(mode="json")
    if kind == "reindex":
        return lambda params: reindex_result(ctx, str(params["group"]))
    from lookalike.ingest import scrape

    progress = progress_writer(ctx.settings, job_id)
    if kind == "scrape":
        return lambda params: scrape.scrape_job(ctx, params, progress=progress)
    if kind == "upload":
        assert data is not None
        return lambda params: scrape.upload_job(ctx, params, data, progress=progress)
    raise LookalikeError(f"unknown job kind {kind!r}", code="invalid_parameter", status=422)


def reindex_result(ctx: JobContext, group: str) -> dict[str, Any]:
    from lookalike.index.builder import reindex_group

    built = reindex_group(ctx.settings, group, model_pack=ctx.pipeline.pack_name)
    return {
        "version_id": built.version_id,
        "group": built.group,
        "n_faces": built.n_faces,
        "n_members": built.n_members,
        "threshold": built.threshold,
        "calibration": built.calibration,
    }


def progress_writer(settings: Settings, job_id: str) -> Callable[[dict[str, Any]], None]:
    """Store a running job's counts per stage, at most twice a second (the result holds the final counts)."""
    last = [0.0]

    def write(counts: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - last[0] < 0.5:
            return
        last[0] = now
        with session_scope(settings.sqlalchemy_url) as session:
            repo.set_progress(session, job_id, dict(counts))

    return write


def purge_finished_jobs(settings: Settings) -> int:
    """Forget diagnose results older than the result lifetime."""
    cutoff = utcnow() - timedelta(seconds=settings.result_ttl_s)
    with session_scope(settings.sqlalchemy_url) as session:
        return repo.purge_jobs(session, kind="diagnose", finished_before=cutoff)
