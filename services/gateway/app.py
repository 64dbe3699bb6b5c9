"""The gateway's app factory: `uvicorn services.gateway.app:create_app --factory`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from lookalike import __version__
from lookalike.config import Settings, get_settings
from lookalike.runtime import build_runtime
from services.gateway import errors
from services.gateway.abuse import DiagnoseGuard
from services.gateway.limits import BodyLimitMiddleware
from services.gateway.metrics import MetricsMiddleware
from services.gateway.routes import admin, diagnose, health, jobs, members
from services.gateway.security_headers import SecurityHeadersMiddleware

STATIC = Path(__file__).parent / "static"
# Multipart framing around the image: the cap on the whole body is a little above the cap on the image.
MULTIPART_OVERHEAD = 64 * 1024
log = logging.getLogger(__name__)


class ConfigurationError(RuntimeError):
    """Settings the gateway refuses to start with."""


def check_settings(settings: Settings) -> None:
    # Re-indexing, scraping and uploads reach the ingestion worker only through the admin API: a distributed
    # gateway without a token could not be administered (and the CLI would have to run beside the database).
    if settings.distributed and not settings.admin_token:
        raise ConfigurationError(
            "LOOKALIKE_BROKER_URL is set (distributed mode) but LOOKALIKE_ADMIN_TOKEN is not: the distributed "
            'gateway needs an admin token of 32+ characters, e.g. python -c "import secrets; '
            'print(secrets.token_hex(16))"'
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    check_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = build_runtime(settings)
        app.state.runtime = runtime
        # Load the models before the first request instead of during it.
        await runtime.runner.warm_up()
        log.info("lookalike %s ready: pack %s", __version__, runtime.context.pipeline.pack_name)
        yield
        await runtime.runner.close()

    app = FastAPI(
        title="lookalike",
        version=__version__,
        description="Which gallery members does each face in a photo resemble, and how much - or nobody.",
        lifespan=lifespan,
    )
    # Innermost first: every answer, refusals included, is counted, gets the security headers and, for a
    # configured origin, the CORS headers a browser needs to read it.
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_upload_bytes + MULTIPART_OVERHEAD,
        timeout_s=settings.upload_timeout_s,
    )
    app.add_middleware(DiagnoseGuard, settings=settings)
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Location", "Retry-After"],
        )
    errors.install(app)
    for module in (diagnose, jobs, members, admin, health):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    # The console page itself is public (it holds no data); everything it shows comes from /admin/* with the token.
    @app.get("/admin", include_in_schema=False)
    def admin_console() -> FileResponse:
        return FileResponse(STATIC / "admin.html")

    return app
