"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from lookalike.db.engine import session_scope
from services.gateway.deps import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(runtime: RuntimeDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        with session_scope(runtime.settings.sqlalchemy_url) as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    pipeline = runtime.context.pipeline
    checks["models"] = "ok" if pipeline.loaded else "loading"
    try:
        galleries = runtime.context.registry.refresh(force=True)
        checks["index"] = f"ok: {len(galleries)} groups" if galleries else "empty: no group indexed"
    except Exception as exc:
        checks["index"] = f"error: {type(exc).__name__}"
    ready = checks["database"] == "ok" and checks["models"] == "ok" and checks["index"].startswith("ok")
    return JSONResponse(status_code=200 if ready else 503, content={"ready": ready, "checks": checks})
