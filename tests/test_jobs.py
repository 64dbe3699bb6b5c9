"""Job rows: each delivery claims the row and counts an attempt, the first outcome written stays, a job that keeps
killing its workers fails for good, and the state a runner hands back is the one stored (SQLite here; the
distributed tests run the same functions on PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lookalike.config import Settings
from lookalike.db import repository as repo
from lookalike.db.engine import session_scope
from lookalike.db.migrate import upgrade
from lookalike.errors import LookalikeError
from lookalike.jobs.functions import (
    ProgressWriter,
    begin,
    finish,
    read_job,
    record_job,
    reporting,
    run_inline,
    run_job,
)
from lookalike.jobs.state import JobState


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    s = Settings(data_dir=tmp_path, database_url="", max_attempts=2)
    upgrade(s.sqlalchemy_url)
    return s


def test_a_delivery_claims_runs_and_writes_once(settings: Settings) -> None:
    queued = record_job(settings, job_id="j1", kind="diagnose", params={"group": "g"})
    assert read_job(settings, "j1") is not None and queued.status == "queued"
    seen: list[dict[str, Any]] = []

    def work(params: dict[str, Any]) -> dict[str, Any]:
        seen.append(params)
        return {"faces": [1, 2]}

    done = run_job(settings, "j1", work)
    assert (done.status, done.attempts, done.result, done.error) == ("done", 1, {"faces": [1, 2]}, None)
    assert seen == [{"group": "g"}] and done.worker and done.started_at and done.finished_at
    # A duplicate delivery of a finished job does nothing and reports the stored outcome.
    assert run_job(settings, "j1", work) == done and len(seen) == 1
    # The first outcome stays.
    assert finish(settings, "j1", error={"code": "late", "status": 500}).result == {"faces": [1, 2]}


def test_errors_become_outcomes(settings: Settings) -> None:
    record_job(settings, job_id="j2", kind="diagnose", params={})

    def fails(_: dict[str, Any]) -> dict[str, Any]:
        raise LookalikeError("bad photo", code="corrupt_image", status=422)

    state = run_job(settings, "j2", fails)
    assert state.status == "failed" and state.error == {"code": "corrupt_image", "message": "bad photo", "status": 422}

    def crashes(_: dict[str, Any]) -> dict[str, Any]:
        return {"x": 1 / 0}

    record_job(settings, job_id="j3", kind="diagnose", params={})
    state = run_job(settings, "j3", crashes)
    assert state.error is not None and state.error["code"] == "internal_error"


def test_a_job_that_kills_its_workers_fails_after_max_attempts(settings: Settings) -> None:
    record_job(settings, job_id="j4", kind="diagnose", params={})
    for attempt in (1, 2):  # deliveries that died before writing an outcome
        state, params = begin(settings, "j4")
        assert (state.status, state.attempts, params) == ("running", attempt, {})
    state, params = begin(settings, "j4")
    assert params is None and state.status == "failed" and state.error is not None
    assert state.error["code"] == "worker_lost" and state.attempts == 2
    with pytest.raises(LookalikeError) as missing:
        begin(settings, "nope")
    assert missing.value.code == "not_found"


def test_a_lock_key_admits_one_live_job(settings: Settings) -> None:
    record_job(settings, job_id="r1", kind="reindex", params={}, lock_key="reindex:g")
    with pytest.raises(LookalikeError) as conflict:
        record_job(settings, job_id="r2", kind="reindex", params={}, lock_key="reindex:g")
    assert conflict.value.status == 409
    run_job(settings, "r1", lambda _: {})
    record_job(settings, job_id="r3", kind="reindex", params={}, lock_key="reindex:g")  # the first one ended


def test_inline_state_is_the_stored_one(settings: Settings) -> None:
    job = record_job(settings, job_id="i1", kind="diagnose", params={"group": None})
    state = run_inline(settings, job, {"group": None}, lambda _: {"ok": True})
    stored = read_job(settings, "i1")
    assert stored is not None
    for field in ("id", "kind", "status", "attempts", "worker", "result", "error"):
        assert getattr(state, field) == getattr(stored, field), field
    for field in ("created_at", "started_at", "finished_at"):  # SQLite hands datetimes back without a zone
        assert getattr(state, field).replace(tzinfo=None) == getattr(stored, field).replace(tzinfo=None), field
    assert state.started_at is not None and state.finished_at is not None and state.finished_at >= state.started_at
    # Something else wrote an outcome first: the runner reports that one, not its own.
    other = record_job(settings, job_id="i2", kind="diagnose", params={})
    finish(settings, "i2", error={"code": "member_deleted", "status": 409})
    assert run_inline(settings, other, {}, lambda _: {"ok": True}).error == {"code": "member_deleted", "status": 409}


def test_state_round_trips_through_json(settings: Settings) -> None:
    record_job(settings, job_id="n1", kind="diagnose", params={})
    state = run_job(settings, "n1", lambda _: {"faces": [{"box": [1.5, 2, 3, 4]}], "name": "堀未央奈"})
    assert JobState.from_json(state.to_json()) == state
    queued = record_job(settings, job_id="n2", kind="diagnose", params={})
    assert JobState.from_json(queued.to_json()) == queued


def stored_progress(settings: Settings, job_id: str) -> dict[str, Any] | None:
    with session_scope(settings.sqlalchemy_url) as session:
        job = repo.get_job(session, job_id)
        assert job is not None
        return job.progress


@pytest.mark.parametrize("fails", [False, True], ids=["done", "failed"])
def test_a_finished_job_shows_its_last_progress(settings: Settings, fails: bool) -> None:
    """The throttle drops writes that come too soon after the last one; the last report is stored all the same
    once the job ends, before its outcome (a scrape used to end showing stage fetch, 7 of 8 members)."""
    record_job(settings, job_id="p1", kind="scrape", params={})
    progress = ProgressWriter(settings, "p1", every_s=3600)

    def work(_: dict[str, Any]) -> dict[str, Any]:
        for done in range(1, 9):
            progress({"stage": "fetch", "members_done": done})
        assert stored_progress(settings, "p1") == {"stage": "fetch", "members_done": 1}  # the throttle held
        progress({"stage": "done", "members_done": 8})
        if fails:
            raise LookalikeError("no group", code="not_found", status=404)
        return {"members": 8}

    state = run_job(settings, "p1", reporting(work, progress))
    assert state.status == ("failed" if fails else "done")
    assert stored_progress(settings, "p1") == {"stage": "done", "members_done": 8}
