"""A job as the API reports it: `queued | running | done | failed`, with its result or error."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row

from lookalike.db.models import Job

FINISHED = ("done", "failed")


@dataclass(frozen=True)
class JobState:
    id: str
    kind: str
    status: str
    attempts: int
    worker: str | None
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @classmethod
    def of(cls, job: Job | Row[Any]) -> JobState:
        """From an ORM object or a Core row of the jobs table."""
        return cls(
            id=job.id,
            kind=job.kind,
            status=job.status,
            attempts=job.attempts,
            worker=job.worker,
            result=job.result,
            error=job.error,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=datetime.isoformat)  # only the timestamps are not JSON types

    @classmethod
    def from_json(cls, text: str | bytes) -> JobState:
        fields = json.loads(text)
        times = {k: datetime.fromisoformat(fields[k]) if fields[k] is not None else None for k in _TIMES}
        return cls(**{**fields, **times})


_TIMES = ("created_at", "started_at", "finished_at")
