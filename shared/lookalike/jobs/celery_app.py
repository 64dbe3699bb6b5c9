"""The Celery application both sides share: the gateway sends by task name, the workers register the tasks.

Messages carry a job id only. Reliability settings: a message is acknowledged after its task ends (acks_late)
and put back when the worker process dies (reject_on_worker_lost); each process takes one message at a time;
soft and hard time limits; Redis redelivers an unacknowledged message only after a visibility timeout well above
the hard limit. The job row's attempt counter stops a job that keeps killing its workers.
"""

from __future__ import annotations

from celery import Celery

from lookalike.config import Settings
from lookalike.jobs.functions import KINDS, task_name


def make_celery(settings: Settings) -> Celery:
    app = Celery("lookalike", broker=settings.broker_url)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # outcomes live in the jobs table, one per job id
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.task_soft_time_limit_s,
        task_time_limit=settings.task_time_limit_s,
        task_routes={task_name(kind.name): {"queue": kind.queue} for kind in KINDS.values()},
        task_default_queue="diagnose",
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app
