"""Bearer-token guard for /admin: compared in constant time; no token configured means no admin API.

Two layers, one rule (`check_admin`): `AdminRoute` checks the Authorization header before FastAPI reads the
request body (an anonymous client cannot make the gateway parse a 20 MB multipart upload), and the `require_admin`
dependency puts the bearer scheme and the 401/403 answers in the OpenAPI document.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lookalike.errors import LookalikeError
from lookalike.schemas import ErrorResponse
from services.gateway.deps import RuntimeDep


class Unauthorized(LookalikeError):
    code = "unauthorized"
    status = 401


class AdminDisabled(LookalikeError):
    code = "admin_disabled"
    status = 403


def check_admin(token: str, authorization: str | None) -> None:
    """Raise unless `authorization` is `Bearer <token>`; always a 403 when no token is configured."""
    if not token:
        raise AdminDisabled("the admin API is disabled: set LOOKALIKE_ADMIN_TOKEN, or use the lookalike CLI")
    scheme, _, given = (authorization or "").partition(" ")
    # compare_digest takes the same time whatever prefix matches (its length check leaks only the length).
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Unauthorized("a valid admin bearer token is required")


_bearer = HTTPBearer(auto_error=False, description="LOOKALIKE_ADMIN_TOKEN", scheme_name="admin token")


def require_admin(
    runtime: RuntimeDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    given = f"Bearer {credentials.credentials}" if credentials is not None else None
    check_admin(runtime.settings.admin_token, given)


AdminDep = Annotated[None, Depends(require_admin)]

ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "unauthorized: no or a wrong bearer token"},
    403: {"model": ErrorResponse, "description": "admin_disabled: no LOOKALIKE_ADMIN_TOKEN configured"},
}


class AdminRoute(APIRoute):
    """A route that refuses a request without the admin token before its body is read."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            check_admin(request.app.state.runtime.settings.admin_token, request.headers.get("authorization"))
            return await handler(request)

        return guarded
