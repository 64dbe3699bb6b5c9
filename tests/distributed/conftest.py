"""Fixtures of the distributed tests: the test Redis db, a PostgreSQL database of the session's own with the demo
gallery ingested through the CLI, and per test module a cluster of real processes, always stopped afterwards.

Without Redis or PostgreSQL on loopback these tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import fcntl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from dist_harness import (
    DEMO,
    GROUP,
    LOOKALIKE,
    REDIS_URL,
    Cluster,
    Reference,
    Stack,
    ensure_postgres,
    ensure_redis,
    in_ci,
    redis_ping,
    require,
    start_cluster,
)
from psycopg import sql
from sqlalchemy.engine import make_url

from lookalike.config import Settings
from lookalike.errors import LookalikeError
from lookalike.index.registry import IndexRegistry
from lookalike.pipeline.pipeline import Pipeline

LOCK_FILE = Path(tempfile.gettempdir()) / "lookalike-distributed-tests.lock"
LOCK_WAIT_S = 420.0


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test shows the tail of every process log of its cluster."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed:
        cluster = getattr(item, "funcargs", {}).get("cluster")
        if isinstance(cluster, Cluster):
            report.sections.append(("distributed cluster logs", cluster.log_tails(60)))


@pytest.fixture(scope="session")
def suite_lock() -> Iterator[None]:
    """One run of these tests at a time on a machine: they share the Redis db and restart the servers."""
    with LOCK_FILE.open("w") as fh:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    require(False, f"another run of the distributed tests held {LOCK_FILE} for {LOCK_WAIT_S:.0f}s")
                time.sleep(1.0)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def redis_url(suite_lock: None) -> Iterator[str]:
    """The test Redis db, emptied first. Skips where there is no Redis, except under CI=true."""
    if not redis_ping(REDIS_URL):
        if in_ci():
            pytest.fail(f"CI requires Redis at {REDIS_URL}")
        pytest.skip(f"no Redis at {REDIS_URL} (set LOOKALIKE_TEST_REDIS_URL)")
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    client.close()
    yield REDIS_URL
    # A chaos test may have stopped it: leave Redis running whatever happened.
    ensure_redis(REDIS_URL)
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def dist_database(postgres_url: str) -> Iterator[str]:
    """A fresh database on the test server for the whole distributed session, dropped at the end."""
    name = f"lk_dist_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        from lookalike.db.engine import get_engine

        get_engine(Settings(database_url=url).sqlalchemy_url).dispose()
        ensure_postgres(postgres_url)
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def stack(redis_url: str, dist_database: str, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """The demo gallery ingested and indexed the operator's way: `lookalike ingest demo/gallery --group ...`."""
    root = tmp_path_factory.mktemp("distributed")
    stack = Stack(database_url=dist_database, redis_url=redis_url, ingest_dir=root / "ingest-host")
    stack.ingest_dir.mkdir()
    started = time.monotonic()
    done = subprocess.run(
        [LOOKALIKE, "ingest", str(DEMO), "--group", GROUP],
        cwd=root,
        env=stack.env(stack.ingest_dir),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"lookalike ingest failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    print(f"\ndemo gallery ingested into {dist_database.rsplit('/', 1)[-1]} in {time.monotonic() - started:.1f}s")
    return stack


@pytest.fixture(scope="module")
def cluster(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One set of processes per test module (a module may override this fixture to change their settings)."""
    yield from start_cluster(stack, tmp_path_factory.mktemp("cluster"))


@pytest.fixture(scope="session")
def reference(pipeline: Pipeline, stack: Stack) -> Reference:
    """The embedded mode on the same database: ("done", result) or ("failed", error) of a photo, computed here.

    It reads the index files the CLI wrote on the ingest host, where the diagnose workers rebuild theirs from the
    database: equal answers also show that a rebuilt version is the published one."""
    registry = IndexRegistry(Settings(database_url=stack.database_url, data_dir=stack.ingest_dir), pipeline.pack_name)
    cache: dict[tuple[bytes, str | None, int], tuple[str, dict[str, Any]]] = {}

    def run(data: bytes, group: str | None) -> tuple[str, dict[str, Any]]:
        galleries = registry.galleries(group)
        key = (data, group, galleries[0].version_id)
        if key not in cache:
            try:
                cache[key] = ("done", pipeline.diagnose(data, galleries=galleries).model_dump(mode="json"))
            except LookalikeError as exc:
                cache[key] = ("failed", {"code": exc.code, "message": exc.message, "status": exc.status})
        return cache[key]

    return run
