"""How the suite shares two pytest-xdist workers (`make test` runs `pytest -n 2`).

A third of a serial run's CPU time is idle: tests wait on their gateways, workers, browsers and timeouts. Two
workers fill it, under three rules:
- A module goes to one worker whole, so that its module-scoped gateways and clusters start once.
- Tests that restart or share PostgreSQL and Redis (the distributed tests, the Postgres test, the broker-backed
  abuse limits) go to one worker together: the chaos tests stop those servers.
- A test marked `alone` runs while the other worker waits: the privacy tests scan the system temp folder for any
  new file holding their photos, which another test's upload may write there at the same moment.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

SHARED_SERVERS = ("tests/distributed/", "tests/test_db.py", "tests/hardening/test_abuse_limits.py")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "alone: runs while no test runs on another xdist worker")


def work_unit(nodeid: str) -> str:
    """The tests that must run on one worker: a module, or every user of the shared servers."""
    module = nodeid.split("::", 1)[0]
    return "shared-servers" if module.startswith(SHARED_SERVERS) else module


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which answers for every --dist mode
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return ByWorkUnit(config, log)


@contextmanager
def flocked(path: Path, operation: int) -> Iterator[None]:
    with path.open("a") as fh:
        fcntl.flock(fh, operation)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Each test (set-up and teardown included) holds the run's room lock: shared, or alone exclusive. Whoever
    wants the room passes the turnstile first, and `alone` holds it while it waits, so that the other worker
    cannot keep the room shared test after test."""
    basetemp = getattr(item.config, "workerinput", None) and item.config.option.basetemp
    if not basetemp:  # not an xdist worker: nothing runs beside this test
        yield
        return
    run = Path(basetemp).parent  # the run's own temp root, shared by its workers
    turnstile, room = run / "turnstile.lock", run / "room.lock"
    if item.get_closest_marker("alone"):
        with flocked(turnstile, fcntl.LOCK_EX), flocked(room, fcntl.LOCK_EX):
            yield
    else:
        with flocked(turnstile, fcntl.LOCK_EX):
            pass
        with flocked(room, fcntl.LOCK_SH):
            yield
