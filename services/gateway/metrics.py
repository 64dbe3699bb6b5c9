"""Prometheus metrics: requests, queue depth, job latency by stage, faces per second.

Workers report their stage timings inside each result, so the gateway observes them for every mode without a
multi-process registry.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lookalike.jobs.state import JobState
from lookalike.schemas import DiagnoseResult

REGISTRY = CollectorRegistry()
REQUESTS = Counter("lookalike_http_requests", "HTTP requests", ["method", "route", "status"], registry=REGISTRY)
REQUEST_SECONDS = Histogram("lookalike_http_request_seconds", "HTTP request latency", ["route"], registry=REGISTRY)
QUEUE_DEPTH = Gauge("lookalike_queue_depth", "Messages waiting in each job queue", ["queue"], registry=REGISTRY)
STAGE_SECONDS = Histogram(
    "lookalike_job_stage_seconds",
    "Diagnose latency by stage (queue: accepted to started)",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
FACES = Counter("lookalike_faces", "Faces diagnosed", registry=REGISTRY)
FACES_PER_SECOND = Gauge(
    "lookalike_faces_per_second", "Faces diagnosed per second over the last minute", registry=REGISTRY
)
WINDOW_S = 60.0
_recent: deque[tuple[float, int]] = deque()


def observe_result(result: DiagnoseResult, state: JobState) -> None:
    for stage, ms in result.timings_ms.items():
        STAGE_SECONDS.labels(stage).observe(ms / 1000)
    if state.started_at is not None:
        STAGE_SECONDS.labels("queue").observe(max(0.0, (state.started_at - state.created_at).total_seconds()))
    FACES.inc(len(result.faces))
    _recent.append((time.monotonic(), len(result.faces)))


def _faces_per_second() -> float:
    cutoff = time.monotonic() - WINDOW_S
    while _recent and _recent[0][0] < cutoff:
        _recent.popleft()
    return sum(n for _, n in _recent) / WINDOW_S


async def render(queue_depths: dict[str, int]) -> Response:
    for queue, depth in queue_depths.items():
        QUEUE_DEPTH.labels(queue).set(depth)
    FACES_PER_SECOND.set(_faces_per_second())
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def _flat(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """The app's routes with FastAPI's included routers opened up (FastAPI resolves them lazily, so the route an
    included router would pick is not in its own `matches` answer; a routed request's scope names that route)."""
    for route in routes:
        opened = getattr(route, "effective_route_contexts", None)
        if opened is None:
            yield route
        else:
            yield from (context.original_route for context in opened())


def route_template(scope: Scope) -> str:
    """The path template of the request's route. A request refused before routing (413 from its declared length,
    429) has no route in its scope: it is matched here as the router would match it, so a refused upload counts
    under /diagnose, and only a path that no route takes counts as unmatched."""
    route = scope.get("route")
    if route is None:
        partial = None  # the path matches but not the method: the router's 405
        for candidate in _flat(getattr(scope.get("app"), "routes", ())):
            match, _ = candidate.matches(scope)
            if match is Match.FULL:
                route = candidate
                break
            if match is Match.PARTIAL and partial is None:
                partial = candidate
        route = route or partial
    return getattr(route, "path", "unmatched")


class MetricsMiddleware:
    """Counts every request by its route template (never the raw path: ids would explode the label set)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            template = route_template(scope)
            method = Request(scope).method
            REQUESTS.labels(method, template, str(status)).inc()
            REQUEST_SECONDS.labels(template).observe(time.perf_counter() - started)
