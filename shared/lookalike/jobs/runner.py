"""The Runner interface the gateway talks to, and its embedded implementation.

InlineRunner runs job functions in a thread pool of the gateway process: the event loop only awaits, it never
decodes or runs a model. ONNX Runtime releases the GIL while it computes, so threads use every core.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from lookalike.jobs.functions import JobContext, diagnose_job, purge_finished_jobs, record_job
from lookalike.schemas import DiagnoseResult

PURGE_EVERY_S = 60.0


class Runner(Protocol):
    async def diagnose(self, data: bytes, *, group: str | None) -> DiagnoseResult: ...

    async def warm_up(self) -> None: ...

    async def close(self) -> None: ...


class InlineRunner:
    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self._pool = ThreadPoolExecutor(max_workers=ctx.settings.workers, thread_name_prefix="lookalike-worker")
        self._last_purge = 0.0

    async def diagnose(self, data: bytes, *, group: str | None) -> DiagnoseResult:
        loop = asyncio.get_running_loop()
        job_id = str(uuid.uuid4())
        await loop.run_in_executor(
            self._pool,
            lambda: record_job(self.ctx.settings, job_id=job_id, kind="diagnose", params={"group": group}),
        )
        result = await loop.run_in_executor(self._pool, lambda: diagnose_job(self.ctx, job_id, data, group=group))
        if time.monotonic() - self._last_purge > PURGE_EVERY_S:
            self._last_purge = time.monotonic()
            loop.run_in_executor(self._pool, purge_finished_jobs, self.ctx.settings)
        return result

    async def warm_up(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self.ctx.pipeline.load)
        await loop.run_in_executor(self._pool, purge_finished_jobs, self.ctx.settings)
        self._last_purge = time.monotonic()

    async def close(self) -> None:
        self._pool.shutdown(wait=True)
