"""GET /jobs/{id}: a job's status and, once it is finished, its result or error."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from lookalike.errors import NotFound
from lookalike.jobs.functions import read_job
from lookalike.schemas import ErrorResponse, Timestamp
from services.gateway.deps import RuntimeDep

router = APIRouter(tags=["jobs"])


class JobOut(BaseModel):
    id: str
    kind: str
    status: str  # queued | running | done | failed
    attempts: int
    worker: str | None
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    result: dict[str, Any] | None
    error: dict[str, Any] | None


@router.get("/jobs/{job_id}", response_model=JobOut, responses={404: {"model": ErrorResponse}})
async def get_job(runtime: RuntimeDep, job_id: str) -> JobOut:
    state = await asyncio.to_thread(read_job, runtime.settings, job_id)
    if state is None:
        raise NotFound(f"no job {job_id}")
    return JobOut(**state.__dict__)
