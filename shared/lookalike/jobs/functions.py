"""Job functions: what a worker does with one delivery of a job id, whichever runner delivered it.

The job row is written and committed before any message is sent. Each delivery claims the row, counts an
attempt, and writes the outcome once: a duplicate delivery of a finished job does nothing, and a job whose
deliveries keep killing their worker fails for good after `max_attempts`. Results keep boxes and member scores,
never image bytes or the uploader's embedding.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, Table, Update, insert, select, update

from lookalike.config import Settings
from lookalike.context import JobContext
from lookalike.db import repository as repo
from lookalike.db.engine import get_engine, session_scope
from lookalike.db.models import Job, utcnow
from lookalike.errors import LookalikeError
from lookalike.index.builder import reindex_group
from lookalike.ingest import scrape
from lookalike.jobs.state import JobState

log = logging.getLogger(__name__)


def error_of(exc: LookalikeError) -> dict[str, Any]:
    return {**exc.to_dict(), "status": exc.status}


Work = Callable[[dict[str, Any]], dict[str, Any]]
JOBS: Table = Job.__table__  # type: ignore[assignment]  # declared models always map a Table
LIVE = ("queued", "running")
# Job rows are written with Core statements on a pooled connection, not through ORM sessions: a diagnosis writes
# three of them, and the ORM's unit of work held the GIL for longer than the detector's own Python code.


def record_job(
    settings: Settings, *, job_id: str, kind: str, params: dict[str, Any], lock_key: str | None = None
) -> JobState:
    """Write the job row (committed when this returns). A live job holding `lock_key` makes this a 409."""
    from sqlalchemy.exc import IntegrityError

    state = JobState(job_id, kind, "queued", 0, None, None, None, utcnow(), None, None)
    try:
        with get_engine(settings.sqlalchemy_url).begin() as conn:
            conn.execute(
                insert(JOBS).values(
                    id=job_id,
                    kind=kind,
                    params=params,
                    status="queued",
                    attempts=0,
                    lock_key=lock_key,
                    created_at=state.created_at,
                )
            )
    except IntegrityError:
        raise LookalikeError(
            f"a {kind} job for {lock_key} is already queued or running", code="job_conflict", status=409
        ) from None
    return state


def _read(conn: Connection, job_id: str, *, lock: bool = False) -> Row[Any] | None:
    query = select(JOBS).where(JOBS.c.id == job_id)
    return conn.execute(query.with_for_update() if lock else query).first()


def read_job(settings: Settings, job_id: str) -> JobState | None:
    with get_engine(settings.sqlalchemy_url).connect() as conn:
        row = _read(conn, job_id)
    return JobState.of(row) if row is not None else None


def _outcome(result: dict[str, Any] | None, error: dict[str, Any] | None) -> dict[str, Any]:
    return {"status": "failed" if error is not None else "done", "result": result, "error": error}


def _write_outcome(job_id: str, outcome: dict[str, Any], finished_at: datetime) -> Update:
    """The outcome, written only while the job is live: a job already done or failed keeps its first one."""
    live = update(JOBS).where(JOBS.c.id == job_id, JOBS.c.status.in_(LIVE))
    return live.values(**outcome, finished_at=finished_at)


def finish(
    settings: Settings, job_id: str, *, result: dict[str, Any] | None = None, error: dict[str, Any] | None = None
) -> JobState:
    """Write the outcome once: a job already done or failed keeps its first one. Returns the job as stored."""
    with get_engine(settings.sqlalchemy_url).begin() as conn:
        written = _write_outcome(job_id, _outcome(result, error), utcnow())
        row = conn.execute(written.returning(*JOBS.c)).first() or _read(conn, job_id)
    if row is None:
        raise LookalikeError(f"no job {job_id}", code="not_found", status=404)
    return JobState.of(row)


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"  # operators find a stuck or dying worker by it


def begin(settings: Settings, job_id: str) -> tuple[JobState, dict[str, Any] | None]:
    """Claim one delivery. Returns the job's state and, when this delivery should do the work, its params."""
    worker = _worker_name()
    with get_engine(settings.sqlalchemy_url).begin() as conn:
        # One statement in the common case: the row lock it takes serialises duplicate deliveries.
        claimed = update(JOBS).where(
            JOBS.c.id == job_id, JOBS.c.status.in_(LIVE), JOBS.c.attempts < settings.max_attempts
        )
        row = conn.execute(
            claimed.values(
                status="running", attempts=JOBS.c.attempts + 1, started_at=utcnow(), worker=worker
            ).returning(*JOBS.c)
        ).first()
        if row is not None:
            return JobState.of(row), dict(row.params)
        row = _read(conn, job_id)
    if row is None:
        raise LookalikeError(f"no job {job_id}", code="not_found", status=404)
    state = JobState.of(row)
    if state.finished:
        return state, None
    # Every earlier delivery died without an outcome: this job kills its workers.
    error = {"code": "worker_lost", "message": f"the job stopped its worker {state.attempts} times", "status": 500}
    return finish(settings, job_id, error=error), None


def _run(job: JobState, work: Work, params: dict[str, Any]) -> dict[str, Any]:
    """`work(params)` as an outcome: its result, or its error as the API reports it."""
    try:
        return _outcome(work(params), None)
    except LookalikeError as exc:
        return _outcome(None, error_of(exc))
    except Exception as exc:
        log.exception("%s job %s failed", job.kind, job.id)
        # The exception's text stays in the log: it may quote internals, or bytes of a hostile upload.
        message = f"the job failed ({type(exc).__name__}); the server log has the details"
        return _outcome(None, {"code": "internal_error", "message": message, "status": 500})


def run_job(settings: Settings, job_id: str, work: Work) -> JobState:
    """One delivery: claim, run `work(params)`, write the result or the error once."""
    state, params = begin(settings, job_id)
    if params is None:
        return state
    outcome = _run(state, work, params)
    return finish(settings, job_id, result=outcome["result"], error=outcome["error"])


def run_inline(settings: Settings, job: JobState, params: dict[str, Any], work: Work) -> JobState:
    """The only delivery of a job this process recorded (embedded mode): no claim to read back, and the state
    returned is the one written, kept in memory. Only if something else wrote an outcome first (a member
    deletion failing live jobs, say) is the row read again."""
    engine = get_engine(settings.sqlalchemy_url)
    running = replace(job, status="running", attempts=job.attempts + 1, started_at=utcnow(), worker=_worker_name())
    claim = update(JOBS).where(JOBS.c.id == job.id, JOBS.c.status == "queued")
    columns = ("status", "attempts", "started_at", "worker")
    with engine.begin() as conn:
        claimed = conn.execute(claim.values({c: getattr(running, c) for c in columns})).rowcount
    if not claimed:
        return read_job(settings, job.id) or job
    outcome = _run(running, work, params)
    finished_at = utcnow()
    done = replace(running, **outcome, finished_at=finished_at)
    with engine.begin() as conn:
        written = conn.execute(_write_outcome(job.id, outcome, finished_at)).rowcount
    return done if written else (read_job(settings, job.id) or done)


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
        return lambda params: diagnose(ctx, params, data)
    if kind == "reindex":
        return lambda params: reindex_result(ctx, str(params["group"]))
    progress = ProgressWriter(ctx.settings, job_id)
    if kind == "scrape":
        return reporting(lambda params: scrape.scrape_job(ctx, params, progress=progress), progress)
    if kind == "upload":
        assert data is not None
        return reporting(lambda params: scrape.upload_job(ctx, params, data, progress=progress), progress)
    raise LookalikeError(f"unknown job kind {kind!r}", code="invalid_parameter", status=422)


def pack_photos(photos: list[bytes]) -> tuple[bytes, list[int] | None]:
    """One upload blob for the job and, for several photos of one person, the size of each (params["sizes"])."""
    return b"".join(photos), [len(p) for p in photos] if len(photos) > 1 else None


def unpack_photos(data: bytes, sizes: list[int] | None) -> list[bytes]:
    if not sizes:
        return [data]
    if sum(sizes) != len(data) or any(n <= 0 for n in sizes):
        raise lost_upload()
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return [data[start : start + n] for start, n in zip(starts, sizes, strict=True)]


def diagnose(ctx: JobContext, params: dict[str, Any], data: bytes) -> dict[str, Any]:
    galleries = ctx.registry.galleries(params.get("group"))
    explain = bool(params.get("explain"))
    photos = unpack_photos(data, params.get("sizes"))
    if len(photos) == 1:
        result = ctx.pipeline.diagnose(photos[0], galleries=galleries, explain=explain)
    else:
        result = ctx.pipeline.diagnose_person(photos, galleries=galleries, explain=explain)
    return result.model_dump(mode="json")


def reindex_result(ctx: JobContext, group: str) -> dict[str, Any]:
    built = reindex_group(ctx.settings, group, model_pack=ctx.pipeline.pack_name, embed=ctx.pipeline.embed_crops)
    return {
        "version_id": built.version_id,
        "group": built.group,
        "n_faces": built.n_faces,
        "n_members": built.n_members,
        "threshold": built.threshold,
        "lookalike_threshold": built.calibration.get("lookalike_threshold"),
        "threshold_interval": built.calibration.get("threshold_interval"),
        "suspect_pairs": built.suspect_pairs,
        "calibration": built.calibration,
    }


class ProgressWriter:
    """Stores a running job's counts per stage, at most twice a second; `flush` stores the last counts reported
    if the throttle held them back, so a job that has ended shows where it ended, not its last timely write."""

    def __init__(self, settings: Settings, job_id: str, *, every_s: float = 0.5) -> None:
        self._url = settings.sqlalchemy_url
        self._job_id = job_id
        self._every_s = every_s
        self._written_at = float("-inf")
        self._pending: dict[str, Any] | None = None

    def __call__(self, counts: dict[str, Any]) -> None:
        self._pending = dict(counts)
        if time.monotonic() - self._written_at >= self._every_s:
            self.flush()

    def flush(self) -> None:
        if self._pending is None:
            return
        with session_scope(self._url) as session:
            repo.set_progress(session, self._job_id, self._pending)
        self._pending, self._written_at = None, time.monotonic()


def reporting(work: Work, progress: ProgressWriter) -> Work:
    """`work`, then its last progress stored, whatever the throttle held back (before the outcome is written)."""

    def run(params: dict[str, Any]) -> dict[str, Any]:
        try:
            return work(params)
        finally:
            progress.flush()

    return run


def purge_finished_jobs(settings: Settings) -> int:
    """Forget diagnose results older than the result lifetime."""
    cutoff = utcnow() - timedelta(seconds=settings.result_ttl_s)
    with session_scope(settings.sqlalchemy_url) as session:
        return repo.purge_jobs(session, kind="diagnose", finished_before=cutoff)
