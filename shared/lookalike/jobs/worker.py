"""What a Celery worker process does with a delivery; the task modules in services/ only delegate here."""

from __future__ import annotations

import logging
import threading

from celery.exceptions import SoftTimeLimitExceeded

from lookalike.config import get_settings
from lookalike.context import JobContext
from lookalike.jobs.blobs import BlobStore
from lookalike.jobs.functions import KINDS, finish, run_job, work_for
from lookalike.jobs.state import JobState

log = logging.getLogger(__name__)
_lock = threading.Lock()
_context: JobContext | None = None
_blobs: BlobStore | None = None


def context() -> tuple[JobContext, BlobStore]:
    """Per process, built on first use (a fork must not inherit ONNX sessions, and heavy set-up in
    worker_process_init gets killed by Celery's timeout)."""
    global _context, _blobs
    with _lock:
        if _context is None or _blobs is None:
            from lookalike.runtime import build_context

            settings = get_settings()
            _context = build_context(settings)
            _blobs = BlobStore(settings.broker_url)
        return _context, _blobs


def deliver(kind: str, job_id: str) -> JobState:
    ctx, blobs = context()
    data = blobs.get(job_id) if KINDS[kind].needs_data else None
    try:
        state = run_job(ctx.settings, job_id, work_for(ctx, kind, job_id, data))
    except SoftTimeLimitExceeded:
        error = {"code": "timeout", "message": f"the {kind} job ran past its time limit", "status": 503}
        state = finish(ctx.settings, job_id, error=error)
    if state.finished:
        # The bytes are only needed until the outcome is written, whatever it was. If Redis is unreachable now,
        # their TTL removes them; the gateway's database poll stands in for the lost notification.
        try:
            if KINDS[kind].needs_data:
                blobs.delete(job_id)
            blobs.announce_done(state)
        except Exception as exc:  # redis raises several connection error types
            log.warning("job %s: could not clean up in Redis (%s); the upload expires with its TTL", job_id, exc)
    return state
