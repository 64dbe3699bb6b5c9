"""The Runner interface the gateway talks to, and its embedded implementation.

A runner accepts a job (the row is committed first, so an accepted job is never lost), then lets the caller wait
for it up to a deadline. InlineRunner runs job functions in a thread pool of the gateway process: the event loop
only awaits, it never decodes or runs a model, and ONNX Runtime releases the GIL while it computes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from lookalike.jobs.functions import (
    JobContext,
    diagnose_work,
    purge_finished_jobs,
    read_job,
    record_job,
    reindex_work,
    run_job,
)
from lookalike.jobs.state import JobState

PURGE_EVERY_S = 60.0


class Runner(Protocol):
    async def submit_diagnose(self, data: bytes, *, group: str | None) -> str: ...

    async def submit_reindex(self, group: str) -> str: ...

    async def wait(self, job_id: str, timeout: float) -> JobState | None:
        """The job's state once finished, or its current state when `timeout` runs out (None: unknown id)."""
        ...

    async def warm_up(self) -> None: ...

    async def close(self) -> None: ...


def new_job_id() -> str:
    return str(uuid.uuid4())


class InlineRunner:
    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self._pool = ThreadPoolExecutor(max_workers=ctx.settings.workers, thread_name_prefix="lookalike-worker")
        # Re-indexing is long and must not take the diagnose workers away.
        self._ingest = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lookalike-ingest")
        self._running: dict[str, asyncio.Future[JobState]] = {}
        self._last_purge = 0.0

    async def _submit(self, pool: ThreadPoolExecutor, job_id: str, call: object) -> str:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[JobState] = loop.run_in_executor(pool, call)  # type: ignore[arg-type]
        self._running[job_id] = future
        future.add_done_callback(lambda _: self._running.pop(job_id, None))
        return job_id

    async def submit_diagnose(self, data: bytes, *, group: str | None) -> str:
        job_id = new_job_id()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            self._pool, lambda: record_job(self.settings, job_id=job_id, kind="diagnose", params={"group": group})
        )
        work = diagnose_work(self.ctx, data)
        await self._submit(self._pool, job_id, lambda: run_job(self.settings, job_id, work))
        if time.monotonic() - self._last_purge > PURGE_EVERY_S:
            self._last_purge = time.monotonic()
            loop.run_in_executor(self._pool, purge_finished_jobs, self.settings)
        return job_id

    async def submit_reindex(self, group: str) -> str:
        job_id = new_job_id()
        await asyncio.to_thread(
            record_job,
            self.settings,
            job_id=job_id,
            kind="reindex",
            params={"group": group},
            lock_key=f"reindex:{group}",
        )
        work = reindex_work(self.settings, self.ctx.pipeline.pack_name)
        return await self._submit(self._ingest, job_id, lambda: run_job(self.settings, job_id, work))

    async def wait(self, job_id: str, timeout: float) -> JobState | None:
        future = self._running.get(job_id)
        if future is not None:
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(future), timeout)
        return await asyncio.to_thread(read_job, self.settings, job_id)

    async def warm_up(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self.ctx.pipeline.load)
        await loop.run_in_executor(self._pool, purge_finished_jobs, self.settings)
        self._last_purge = time.monotonic()

    async def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._ingest.shutdown(wait=True)
