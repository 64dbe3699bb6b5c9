"""The Runner interface the gateway talks to, and its embedded implementation.

A runner accepts a job (the row is committed first, so an accepted job is never lost), then lets the caller wait
for it up to a deadline. InlineRunner runs job functions in thread pools of the gateway process: the event loop
only awaits, it never decodes or runs a model, and ONNX Runtime releases the GIL while it computes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from lookalike.context import JobContext
from lookalike.jobs.functions import KINDS, purge_finished_jobs, read_job, record_job, run_inline, work_for
from lookalike.jobs.state import JobState

log = logging.getLogger(__name__)
PURGE_EVERY_S = 60.0
POLL_S = 0.1


class Runner(Protocol):
    async def submit(
        self, kind: str, params: dict[str, Any], *, data: bytes | None = None, lock_key: str | None = None
    ) -> str:
        """Accept a job; returns its id. `lock_key`: at most one live job per key (else a 409)."""
        ...

    async def wait(self, job_id: str, timeout: float) -> JobState | None:
        """The job's state once finished, or its current state when `timeout` runs out (None: unknown id)."""
        ...

    async def backlog(self, queue: str) -> int:
        """Jobs of a queue accepted and not finished by this process (embedded), or waiting in the broker."""
        ...

    async def warm_up(self) -> None: ...

    async def close(self) -> None: ...


def new_job_id() -> str:
    return str(uuid.uuid4())


class InlineRunner:
    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self._pools = {
            "diagnose": ThreadPoolExecutor(max_workers=ctx.settings.workers, thread_name_prefix="lookalike-worker"),
            # Ingestion is long and must not take the diagnose workers away; one at a time, as in the distributed mode.
            "ingest": ThreadPoolExecutor(max_workers=1, thread_name_prefix="lookalike-ingest"),
        }
        self._running: dict[str, asyncio.Future[JobState]] = {}
        self._backlog = dict.fromkeys(self._pools, 0)
        if ctx.settings.processes == 1:
            # The only process on the machine: a photo with no other job queued or running may use every core.
            ctx.pipeline.alone = lambda: self._backlog["diagnose"] <= 1 and self._backlog["ingest"] == 0
        self._purger: asyncio.Task[None] | None = None

    async def submit(
        self, kind: str, params: dict[str, Any], *, data: bytes | None = None, lock_key: str | None = None
    ) -> str:
        job_id = new_job_id()
        queue = KINDS[kind].queue
        pool = self._pools[queue]
        loop = asyncio.get_running_loop()
        # Not on the job pool: a job's row is written while the workers run the jobs before it, so a worker
        # that frees up finds the next job ready instead of first writing its row.
        job = await asyncio.to_thread(
            record_job, self.settings, job_id=job_id, kind=kind, params=params, lock_key=lock_key
        )
        work = work_for(self.ctx, kind, job_id, data)
        future = loop.run_in_executor(pool, run_inline, self.settings, job, params, work)
        self._running[job_id] = future
        self._backlog[queue] += 1
        future.add_done_callback(lambda _: self._finished(job_id, queue))
        return job_id

    async def wait(self, job_id: str, timeout: float) -> JobState | None:
        future = self._running.get(job_id)
        if future is not None:
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(future), timeout)
        # Not started by this process (another gateway, the CLI): its row is the only news of it.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            state = await asyncio.to_thread(read_job, self.settings, job_id)
            if state is None or state.finished or loop.time() >= deadline:
                return state
            await asyncio.sleep(min(POLL_S, deadline - loop.time()))

    def _finished(self, job_id: str, queue: str) -> None:
        self._running.pop(job_id, None)
        self._backlog[queue] -= 1

    async def backlog(self, queue: str) -> int:
        return self._backlog[queue]

    async def warm_up(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pools["diagnose"], self.ctx.pipeline.load)
        await asyncio.to_thread(purge_finished_jobs, self.settings)
        self._purger = asyncio.create_task(self._purge())

    async def _purge(self) -> None:
        """Results outlive their lifetime by at most a minute (less for shorter lifetimes), requests or not."""
        every = max(1.0, min(PURGE_EVERY_S, self.settings.result_ttl_s / 2))
        while True:
            await asyncio.sleep(every)
            try:
                await asyncio.to_thread(purge_finished_jobs, self.settings)
            except Exception as exc:  # a locked or missing database: the next round tries again
                log.warning("could not purge expired results: %s", exc)

    async def close(self) -> None:
        if self._purger is not None:
            self._purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purger
        for pool in self._pools.values():
            pool.shutdown(wait=True)
