"""The rules of tests/workers.py, on a small suite of its own run by two real xdist workers: a module stays on one
worker, the users of the shared servers share one, and an `alone` test overlaps no other test."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from workers import work_unit

RECORD = """
import os, time
from pathlib import Path

def record(name, seconds):
    start = time.time()
    time.sleep(seconds)
    line = f"{name} {os.environ['PYTEST_XDIST_WORKER']} {start} {time.time()}\\n"
    with (Path(__file__).parent / "log.txt").open("a") as fh:
        fh.write(line)
"""

MANY = """
import pytest
from record import record

@pytest.mark.parametrize("i", range(6))
def test_many(i):
    record(f"many{i}", 0.4)
"""

WITH_ALONE = """
import pytest
from record import record

def test_before():
    record("before", 0.2)

@pytest.mark.alone
def test_alone():
    record("alone", 1.5)

def test_after():
    record("after", 0.2)
"""


def test_work_units() -> None:
    assert work_unit("tests/test_api.py::test_health") == "tests/test_api.py"
    assert work_unit("tests/test_api.py::test_member[hori_miona]") == "tests/test_api.py"
    for nodeid in (
        "tests/distributed/test_dist_chaos.py::test_redis_restart_during_a_burst",
        "tests/test_db.py::test_postgres_runs_ingest_index_and_diagnose",
        "tests/hardening/test_abuse_limits.py::test_distributed_queue_cap_is_the_broker_queue",
    ):
        assert work_unit(nodeid) == "shared-servers"


def test_two_workers_keep_modules_whole_and_alone_alone(tmp_path: Path) -> None:
    shutil.copy(Path(__file__).with_name("workers.py"), tmp_path)
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["workers"]\n')
    (tmp_path / "record.py").write_text(RECORD)
    (tmp_path / "test_many.py").write_text(MANY)
    (tmp_path / "test_with_alone.py").write_text(WITH_ALONE)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider", "--rootdir", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    runs = {}
    for line in (tmp_path / "log.txt").read_text().splitlines():
        name, worker, start, end = line.split()
        runs[name] = (worker, float(start), float(end))
    assert len(runs) == 9
    assert len({runs[f"many{i}"][0] for i in range(6)}) == 1
    assert runs["before"][0] == runs["alone"][0] == runs["after"][0] != runs["many0"][0]
    _, alone_start, alone_end = runs["alone"]
    for name, (_, start, end) in runs.items():
        if name != "alone":
            assert end <= alone_start or start >= alone_end, f"{name} ran beside the alone test"
