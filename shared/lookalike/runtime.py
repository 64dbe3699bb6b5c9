"""The one place that decides how this process runs: which database, which runner, which models.

No broker URL: embedded (in-process worker pool). A broker URL: distributed (Celery workers behind Redis).
"""

from __future__ import annotations

from dataclasses import dataclass

from lookalike.config import Settings
from lookalike.context import JobContext
from lookalike.db.migrate import upgrade
from lookalike.index.registry import IndexRegistry
from lookalike.jobs.runner import InlineRunner, Runner
from lookalike.pipeline.pipeline import Pipeline


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    context: JobContext
    runner: Runner


def build_context(settings: Settings) -> JobContext:
    pipeline = Pipeline(settings)
    return JobContext(settings=settings, pipeline=pipeline, registry=IndexRegistry(settings, pipeline.pack_name))


def build_runtime(settings: Settings, *, migrate: bool = True) -> Runtime:
    if migrate:
        upgrade(settings.sqlalchemy_url)
    context = build_context(settings)
    runner: Runner
    if settings.distributed:
        from lookalike.jobs.celery_app import make_celery
        from lookalike.jobs.celery_runner import CeleryRunner

        runner = CeleryRunner(settings, make_celery(settings))
    else:
        runner = InlineRunner(context)
    return Runtime(settings=settings, context=context, runner=runner)
