"""The distributed Runner: job row first, upload bytes to Redis with a TTL, then a message with the job id.

The gateway learns a job ended from a Redis notification and, in case one is lost (a Redis restart), from the
database every second. A reconciler re-sends jobs the broker lost: queued for too long, or running past every
time limit (their worker and its unacknowledged message are gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any

from celery import Celery

from lookalike.config import Settings
from lookalike.db import repository as repo
from lookalike.db.engine import session_scope
from lookalike.db.models import utcnow
from lookalike.errors import LookalikeError
from lookalike.jobs.blobs import DONE_CHANNEL, AsyncBlobStore
from lookalike.jobs.functions import KINDS, finish, purge_finished_jobs, read_job, record_job, task_name, time_limits
from lookalike.jobs.runner import new_job_id
from lookalike.jobs.state import JobState

log = logging.getLogger(__name__)
POLL_S = 1.0


class BrokerUnavailable(LookalikeError):
    code = "broker_unavailable"
    status = 503


class CeleryRunner:
    def __init__(self, settings: Settings, celery: Celery) -> None:
        self.settings = settings
        self.celery = celery
        self.blobs = AsyncBlobStore(settings.broker_url)
        self._waiters: dict[str, list[asyncio.Future[JobState | None]]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def _send(self, job_id: str, kind: str, *, resend: bool = False) -> None:
        self.celery.send_task(task_name(kind), args=[job_id], queue=KINDS[kind].queue, task_id=job_id)
        if resend:  # a first send needs no mark: the reconciler counts from created_at until there is one
            with session_scope(self.settings.sqlalchemy_url) as session:
                repo.mark_enqueued(session, job_id)

    async def submit(
        self, kind: str, params: dict[str, Any], *, data: bytes | None = None, lock_key: str | None = None
    ) -> str:
        job_id = new_job_id()
        await asyncio.to_thread(record_job, self.settings, job_id=job_id, kind=kind, params=params, lock_key=lock_key)
        try:
            if data is not None:
                await self.blobs.put(job_id, data, ttl_s=self.settings.blob_ttl_s)
            await asyncio.to_thread(self._send, job_id, kind)
        except Exception as exc:  # redis and kombu raise many connection error types
            await self._fail_unsent(job_id, exc)
        return job_id

    async def _fail_unsent(self, job_id: str, exc: Exception) -> None:
        log.warning("broker unavailable for job %s: %s", job_id, exc)
        error = {"code": "broker_unavailable", "message": "the job queue is unavailable; retry later", "status": 503}
        await asyncio.to_thread(finish, self.settings, job_id, error=error)
        with contextlib.suppress(Exception):
            await self.blobs.delete(job_id)
        raise BrokerUnavailable("the job queue is unavailable; retry later")

    async def wait(self, job_id: str, timeout: float) -> JobState | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            woken: asyncio.Future[JobState | None] = loop.create_future()
            self._waiters.setdefault(job_id, []).append(woken)
            try:
                state = await asyncio.to_thread(read_job, self.settings, job_id)
                remaining = deadline - loop.time()
                if state is None or state.finished or remaining <= 0:
                    return state
                with contextlib.suppress(TimeoutError):
                    announced = await asyncio.wait_for(woken, min(remaining, POLL_S))
                    if announced is not None and announced.finished:
                        return announced
            finally:
                waiting = self._waiters.get(job_id, [])
                if woken in waiting:
                    waiting.remove(woken)
                if not waiting:
                    self._waiters.pop(job_id, None)

    def _wake(self, job_id: str, state: JobState | None) -> None:
        for future in self._waiters.get(job_id, []):
            if not future.done():
                future.set_result(state)

    async def _listen(self) -> None:
        """Notifications from workers; reconnects after Redis restarts (the database poll covers the gap)."""
        while True:
            try:
                pubsub = self.blobs.redis.pubsub()
                await pubsub.subscribe(DONE_CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._announced(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("job notifications interrupted (%s); reconnecting", type(exc).__name__)
                await asyncio.sleep(1.0)

    def _announced(self, data: bytes | str) -> None:
        """A worker's message: the finished job as JSON (a bare job id from workers older than that)."""
        text = data.decode() if isinstance(data, bytes) else data
        if not text.startswith("{"):
            self._wake(text, None)
            return
        try:
            state = JobState.from_json(text)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("ignored a job notification that does not parse (%s)", exc)
            return
        self._wake(state.id, state)

    async def backlog(self, queue: str) -> int:
        """Messages waiting in a queue (kombu's Redis transport keeps each queue in a list of that name)."""
        return int(await self.blobs.redis.llen(queue))

    def reconcile_once(self, empty: set[str]) -> int:
        """Re-send jobs the broker lost; `empty`: the queues with no message waiting. Safe to run anywhere, any
        number of times: deliveries are idempotent (a message that turned up meanwhile is delivered twice, once
        for nothing)."""
        now = utcnow()
        s = self.settings
        shortest = min(time_limits(s, kind)[1] for kind in KINDS)
        with session_scope(s.sqlalchemy_url) as session:
            stale = repo.stale_jobs(
                session,
                queued_before=now - timedelta(seconds=s.reconcile_after_s),
                running_before=now - timedelta(seconds=shortest + s.reconcile_after_s),
            )
            # A queued job is lost only if its queue is empty (with a backlog its message is still waiting there);
            # a running one only once it has outlived its own kind's hard limit.
            pending = [
                (j.id, j.kind)
                for j in stale
                if j.kind in KINDS
                and (
                    (j.status == "queued" and KINDS[j.kind].queue in empty)
                    or (
                        j.status == "running"
                        and j.started_at is not None
                        and j.started_at < now - timedelta(seconds=time_limits(s, j.kind)[1] + s.reconcile_after_s)
                    )
                )
            ]
        sent = 0
        for job_id, kind in pending:
            self._send(job_id, kind, resend=True)
            sent += 1
        if sent:
            log.warning("re-sent %d jobs the broker had lost", sent)
        return sent

    async def _reconcile(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reconcile_every_s)
            try:
                empty = {q for q in {k.queue for k in KINDS.values()} if await self.backlog(q) == 0}
                await asyncio.to_thread(self.reconcile_once, empty)
                await asyncio.to_thread(purge_finished_jobs, self.settings)
            except Exception as exc:  # the database or broker is down: try again next round
                log.info("reconciler skipped a round: %s", type(exc).__name__)

    async def warm_up(self) -> None:
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._reconcile())]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.blobs.close()
