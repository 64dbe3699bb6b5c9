"""One index writer per group at a time: a Postgres advisory lock across hosts, a file lock on one host."""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from lookalike.config import Settings
from lookalike.db.engine import get_engine
from lookalike.errors import LookalikeError


class ReindexRunning(LookalikeError):
    code = "reindex_running"
    status = 409


def _lock_id(group: str) -> int:
    # Advisory locks take a signed 64-bit key.
    return int.from_bytes(hashlib.sha256(f"lookalike:reindex:{group}".encode()).digest()[:8], "big", signed=True)


@contextmanager
def group_writer_lock(settings: Settings, group: str) -> Iterator[None]:
    url = settings.sqlalchemy_url
    if url.startswith("postgresql"):
        with get_engine(url).connect() as conn:
            if not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _lock_id(group)}).scalar():
                raise ReindexRunning(f"group {group!r} is being re-indexed already")
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _lock_id(group)})
                conn.commit()
        return
    settings.index_dir.mkdir(parents=True, exist_ok=True)
    with (settings.index_dir / f".{group}.lock").open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ReindexRunning(f"group {group!r} is being re-indexed already") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
