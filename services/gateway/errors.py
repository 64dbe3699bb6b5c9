"""Every error leaves the gateway as {"error": {"code", "message"}} with a stable code; never a bare 500."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from lookalike.errors import LookalikeError

log = logging.getLogger(__name__)
HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"}
# 400 comes from body parsing: malformed multipart, or more file parts or fields than the route's form_limits.
HTTP_CODES = {
    400: "invalid_form",
    404: "not_found",
    405: "method_not_allowed",
    413: "upload_too_large",
    415: "not_an_image",
}


def error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"code": code, "message": message}}, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(LookalikeError)
    async def _lookalike(_: Request, exc: LookalikeError) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content={"error": exc.to_dict()})

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(422, "invalid_parameter", f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and str(exc.detail).startswith("Too many files"):
            # More image parts than the route parses: the same answer as too many photos under the cap.
            return error_response(413, "too_many_photos", f"too many photos ({exc.detail})")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(app, request.url.path, headers.get("Allow", ""))
        code = HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), headers)

    @app.exception_handler(DBAPIError)
    async def _database(_: Request, exc: DBAPIError) -> JSONResponse:
        # The connection pool re-connects by itself once the database is back.
        log.warning("database unavailable: %s", type(exc.orig).__name__)
        return error_response(503, "database_unavailable", "the database is unavailable; retry later")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "the server failed to handle this request")


def _allowed_methods(app: FastAPI, path: str, named: str) -> str:
    """Every method the path takes (HTTP requires them all in Allow): Starlette names only those of the first route
    that matches the path, and GET and POST /admin/groups, say, are two routes."""
    methods = {m.strip() for m in named.split(",") if m.strip()}
    for template, operations in app.openapi()["paths"].items():
        parts = re.split(r"(\{[^}]+\})", template)
        if re.fullmatch("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts), path):
            methods |= {m.upper() for m in operations if m.upper() in HTTP_METHODS}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))
