"""Request body cap and upload deadline, enforced while the body streams in (uvicorn itself has neither).

The cap counts the bytes that actually arrive, so it holds for chunked bodies and for a Content-Length that
understates the body (the HTTP parser never hands the app more than the declared length anyway; the rest is
parsed as a next request and refused by uvicorn). A declared length over the cap is refused before any byte is
read. A body that arrives slower than the deadline (a Content-Length that overstates the body, a slow drip)
is answered 408 instead of holding its connection and a request task forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import NoReturn

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyRefused(Exception):
    """Raised into the app once the middleware has answered for it."""


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _reject(send, 413, "upload_too_large", f"the request body is over {self.max_bytes} bytes")
            return
        deadline = time.monotonic() + self.timeout_s
        seen = 0
        body_done = started = rejected = False

        async def refuse(status: int, code: str, message: str) -> NoReturn:
            # Answer now: frameworks wrap errors raised while parsing a body into their own 400.
            nonlocal rejected
            if not started and not rejected:
                rejected = True
                await _reject(send, status, code, message)
            raise BodyRefused

        async def limited_receive() -> Message:
            nonlocal seen, body_done
            if body_done:
                return await receive()  # e.g. waiting for a disconnect: no deadline applies
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    message = await receive()
            except TimeoutError:
                await refuse(408, "upload_timeout", f"the request body did not arrive within {self.timeout_s:g} s")
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if seen > self.max_bytes:
                    await refuse(413, "upload_too_large", f"the request body is over {self.max_bytes} bytes")
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if rejected:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        with contextlib.suppress(BodyRefused):
            await self.app(scope, limited_receive, tracking_send)


async def _reject(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The rest of the body is never read: the connection cannot carry another request.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
