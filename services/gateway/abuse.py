"""Abuse limits on POST /diagnose: a per-client rate and concurrency cap (429), a global queue cap (503).

Checked before the body is read, so a refused upload costs microseconds, not a 20 MB read. The client is the peer
address: uvicorn rewrites it from X-Forwarded-For only for the proxies `lookalike serve` is told to trust
(LOOKALIKE_TRUSTED_PROXIES). The counts live in this process: with several gateway processes each has its own.
"""

from __future__ import annotations

import math
import time

from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from lookalike.config import Settings
from lookalike.runtime import Runtime
from services.gateway.errors import error_response
from services.gateway.metrics import REGISTRY

PATH = "/diagnose"
# A slot of the client's own frees when one of its requests ends; the queue drains at tens of jobs per second.
IN_FLIGHT_RETRY_S = 1
QUEUE_RETRY_S = 5
# Every this many requests, forget the clients whose allowance is full again: the table holds about the clients of
# one window.
SWEEP_EVERY = 1024
REFUSED = Counter("lookalike_diagnose_refused", "POST /diagnose refused by an abuse limit", ["code"], registry=REGISTRY)


class RateLimiter:
    """Generic cell rate algorithm: a burst of `limit`, then one request per `window_s / limit` seconds.

    A client costs one float (when its allowance is full again), kept only while that is in the future.
    """

    def __init__(self, *, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self.interval = window_s / limit
        self._full_at: dict[str, float] = {}
        self._calls = 0

    def acquire(self, client: str) -> float:
        """0 when the request may go ahead (and is counted), else the seconds until it may."""
        now = time.monotonic()
        self._calls += 1
        if self._calls % SWEEP_EVERY == 0:
            self._full_at = {c: t for c, t in self._full_at.items() if t > now}
        full_at = max(self._full_at.get(client, now), now) + self.interval
        if full_at - now > self.window_s:
            return full_at - now - self.window_s
        self._full_at[client] = full_at
        return 0.0


class DiagnoseGuard:
    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.rate = (
            RateLimiter(limit=settings.diagnose_rate_limit, window_s=settings.diagnose_rate_window_s)
            if settings.diagnose_rate_limit > 0
            else None
        )
        self.concurrency = settings.diagnose_client_concurrency
        self.queue_max = settings.diagnose_queue_max
        self._in_flight: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        client = scope["client"][0] if scope.get("client") else "unknown"
        in_flight = self._in_flight.get(client, 0)
        if self.concurrency and in_flight >= self.concurrency:
            message = f"{in_flight} of your requests are still running; wait for one to finish"
            await _refuse(scope, receive, send, 429, "too_many_in_flight", message, IN_FLIGHT_RETRY_S)
            return
        if self.rate and (wait_s := self.rate.acquire(client)):
            message = f"over {self.rate.limit} requests in {self.rate.window_s:g} s; retry in {wait_s:.1f} s"
            await _refuse(scope, receive, send, 429, "rate_limited", message, math.ceil(wait_s))
            return
        # The slot is taken before the first await, so requests racing through the queue check count each other.
        self._in_flight[client] = in_flight + 1
        try:
            if self.queue_max and await self._queue_full(scope):
                message = "the service is busy; retry later"
                await _refuse(scope, receive, send, 503, "queue_full", message, QUEUE_RETRY_S)
                return
            await self.app(scope, receive, send)
        finally:
            left = self._in_flight[client] - 1
            if left:
                self._in_flight[client] = left
            else:
                del self._in_flight[client]

    async def _queue_full(self, scope: Scope) -> bool:
        runtime: Runtime = scope["app"].state.runtime
        try:
            return await runtime.runner.backlog("diagnose") >= self.queue_max
        except Exception:  # the broker is down: the request goes on and is answered broker_unavailable
            return False


async def _refuse(
    scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str, retry_after_s: int
) -> None:
    REFUSED.labels(code).inc()
    response = error_response(status, code, message, {"Retry-After": str(max(1, retry_after_s))})
    await response(scope, receive, send)
