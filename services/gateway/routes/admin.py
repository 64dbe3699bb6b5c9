"""Admin routes (bearer token). Re-index runs on the ingestion worker; a second one per group is a 409."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from lookalike.db import repository as repo
from lookalike.db.engine import session_scope
from lookalike.errors import NotFound
from lookalike.schemas import ErrorResponse
from services.gateway.auth import AdminDep
from services.gateway.deps import RuntimeDep
from services.gateway.routes.diagnose import SLUG, JobAccepted

router = APIRouter(prefix="/admin", tags=["admin"])


def _group_exists(runtime: RuntimeDep, slug: str) -> bool:
    with session_scope(runtime.settings.sqlalchemy_url) as session:
        return repo.get_group(session, slug) is not None


class ReindexRequest(BaseModel):
    group: str = Field(pattern=SLUG)


@router.post(
    "/reindex",
    status_code=202,
    response_model=JobAccepted,
    responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 409: {"model": ErrorResponse}},
)
async def reindex(runtime: RuntimeDep, _: AdminDep, body: ReindexRequest) -> JSONResponse:
    if not await asyncio.to_thread(_group_exists, runtime, body.group):
        raise NotFound(f"no group {body.group!r}", code="unknown_group")
    job_id = await runtime.runner.submit_reindex(body.group)
    location = f"/jobs/{job_id}"
    return JSONResponse(
        status_code=202,
        content=JobAccepted(job_id=job_id, status="queued", location=location).model_dump(),
        headers={"Location": location},
    )
