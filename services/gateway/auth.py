"""Bearer-token guard for /admin: compared in constant time; no token configured means no admin API."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header

from lookalike.errors import LookalikeError
from services.gateway.deps import RuntimeDep


class Unauthorized(LookalikeError):
    code = "unauthorized"
    status = 401


def require_admin(runtime: RuntimeDep, authorization: Annotated[str | None, Header()] = None) -> None:
    token = runtime.settings.admin_token
    if not token:
        raise LookalikeError(
            "the admin API is disabled: set LOOKALIKE_ADMIN_TOKEN, or use the lookalike CLI",
            code="admin_disabled",
            status=403,
        )
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
        raise Unauthorized("a valid admin bearer token is required")


AdminDep = Annotated[None, Depends(require_admin)]
