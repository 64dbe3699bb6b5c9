"""Liveness, readiness, metrics, and what the service tells its users about itself."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import text

from lookalike import __version__
from lookalike.db import repository as repo
from lookalike.db.engine import session_scope
from services.gateway import metrics
from services.gateway.deps import RuntimeDep

router = APIRouter(tags=["health"])


class About(BaseModel):
    version: str
    model_pack: str
    stores_uploads: bool = Field(description="always false: uploads are analysed in memory and dropped")
    result_ttl_s: int = Field(description="diagnose results (boxes and scores, no image) are deleted after this")
    max_upload_bytes: int = Field(description="all photos of one request together")
    max_photos: int = Field(description="photos of one person a request may send (image parts)")
    explain_max_faces: int = Field(description="explain=true maps this many faces, largest first")


@router.get("/about", response_model=About)
def about(runtime: RuntimeDep) -> About:
    """What the web page states: the privacy notice's figures and the upload limit come from here."""
    s = runtime.settings
    return About(
        version=__version__,
        model_pack=runtime.context.pipeline.pack_name,
        stores_uploads=False,
        result_ttl_s=s.result_ttl_s,
        max_upload_bytes=s.max_upload_bytes,
        max_photos=s.max_photos,
        explain_max_faces=s.explain_max_faces,
    )


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _database_and_index(runtime: RuntimeDep) -> tuple[str, str]:
    try:
        with session_scope(runtime.settings.sqlalchemy_url) as session:
            session.execute(text("SELECT 1"))
            active = repo.active_versions(session, runtime.context.pipeline.pack_name)
    except Exception as exc:
        return f"error: {type(exc).__name__}", "unknown"
    return "ok", (f"ok: {len(active)} groups" if active else "empty: no group indexed")


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, str] = Field(description="database, index, and models (embedded) or broker: ok, or why not")


@router.get(
    "/readyz", response_model=Readiness, responses={503: {"model": Readiness, "description": "not ready: see checks"}}
)
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    checks: dict[str, str] = {}
    checks["database"], checks["index"] = await asyncio.to_thread(_database_and_index, runtime)
    if runtime.settings.distributed:
        from redis.asyncio import Redis

        client = Redis.from_url(runtime.settings.broker_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            await client.ping()
            checks["broker"] = "ok"
        except Exception as exc:
            checks["broker"] = f"error: {type(exc).__name__}"
        finally:
            await client.aclose()
    else:
        # Embedded: this process runs the models itself.
        checks["models"] = "ok" if runtime.context.pipeline.loaded else "loading"
    ready = all(v == "ok" or v.startswith("ok:") for v in checks.values())
    return JSONResponse(status_code=200 if ready else 503, content={"ready": ready, "checks": checks})


def _queue_depths(runtime: RuntimeDep) -> dict[str, int]:
    try:
        with session_scope(runtime.settings.sqlalchemy_url) as session:
            counts = repo.queued_counts(session)
    except Exception:
        return {}
    return {kind: counts.get(kind, 0) for kind in ("diagnose", "reindex")}


@router.get("/metrics", include_in_schema=False)
async def prometheus(runtime: RuntimeDep) -> Response:
    return await metrics.render(await asyncio.to_thread(_queue_depths, runtime))
