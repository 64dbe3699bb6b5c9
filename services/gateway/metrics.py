"""Prometheus metrics: requests, queue depth, job latency by stage, faces per second.

Workers report their stage timings inside each result, so the gateway observes them for every mode without a
multi-process registry.
"""

from __future__ import annotations

import time
from collections import deque

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
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
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            method = Request(scope).method
            REQUESTS.labels(method, template, str(status)).inc()
            REQUEST_SECONDS.labels(template).observe(time.perf_counter() - started)
