"""What a worker process holds: its settings, its models and the index versions it serves.

The job functions hand it to the ingest stages they run; it lives below both so that neither imports the other
for it (layers point down only: tests/test_imports.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from lookalike.config import Settings
from lookalike.index.registry import IndexRegistry
from lookalike.pipeline.pipeline import Pipeline


@dataclass(frozen=True)
class JobContext:
    """What a worker process holds: settings, its models and the index versions it serves."""

    settings: Settings
    pipeline: Pipeline
    registry: IndexRegistry
