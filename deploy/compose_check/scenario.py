"""What the check asks of the running stack, every request through the gateway container's published port: a gallery
ingested by the ingestion container, diagnoses, a re-index, a diagnose worker killed mid-burst, a Redis restart."""

from __future__ import annotations

import os
import signal
from functools import partial
from pathlib import Path
from typing import Any

from .checklist import Checklist
from .gateway import FINISHED, MEMBER_VERDICTS, Gateway, poll
from .stack import REPO, Stack

GROUP = "sakamichi"
PROBES = REPO / "tests/data/faces/probes"
# East Asian and Western strangers: the first is the hard case against this gallery (README, calibration).
STRANGERS = [REPO / "tests/data/faces/strangers/jisoo_blackpink", REPO / "tests/data/faces/strangers/meryl_streep"]
BURST = 20
# A job that was running on a killed worker is re-sent once it outlives the hard time limit (90 s) plus the
# reconciler's 20 s; queued ones after 20 s.
RECOVERY_S = 300


def probe_photos() -> dict[str, Path]:
    return {member.name: sorted(member.glob("*.jpg"))[0] for member in sorted(PROBES.iterdir())}


def ingest(checks: Checklist, stack: Stack, gateway: Gateway) -> None:
    with checks.check("demo gallery ingested by the ingestion container", required=True) as notes:
        # As docker-compose.yml's comment tells an operator.
        stack("run", "--rm", "ingest", "lookalike", "ingest", "demo/gallery", "--group", GROUP, timeout=1200)
        group = gateway.groups()[GROUP]
        assert group["members"] == len(probe_photos()), group
        assert group["index_version"] is not None, group
        notes.append(f"{group['members']} members, index version {group['index_version']}")


def diagnose(checks: Checklist, gateway: Gateway) -> None:
    with checks.check("member probes: each answered with the right member") as notes:
        for member, photo in probe_photos().items():
            best, verdict, _ = gateway.top_member(photo)
            assert (best, verdict in MEMBER_VERDICTS) == (member, True), f"{member}: {best} ({verdict})"
        notes.append(f"{len(probe_photos())} of {len(probe_photos())}")
    with checks.check("strangers: no_match") as notes:
        for stranger in STRANGERS:
            best, verdict, _ = gateway.top_member(sorted(stranger.glob("*.jpg"))[0])
            assert verdict == "no_match", f"{stranger.name}: {verdict} ({best})"
        notes.append(", ".join(s.name for s in STRANGERS))


def reindex(checks: Checklist, gateway: Gateway) -> None:
    with checks.check("POST /admin/reindex publishes the next index version") as notes:
        before = int(gateway.groups()[GROUP]["index_version"])
        job_id = gateway.reindex(GROUP)
        job = poll("re-index job", partial(_finished_job, gateway, job_id, admin=True), timeout_s=600)
        assert job["status"] == "done", job
        after = int(gateway.groups()[GROUP]["index_version"])
        assert after == before + 1, (before, after)
        member, photo = next(iter(probe_photos().items()))
        # The diagnose workers swap the new version in within about a second, without a restart.
        poll("workers on the new version", lambda: _on_version(gateway, photo, member, after), timeout_s=60)
        notes.append(f"version {before} -> {after}, workers answer from {after}")


def kill_worker_mid_burst(checks: Checklist, stack: Stack, gateway: Gateway) -> None:
    with checks.check(f"diagnose worker killed mid-burst of {BURST} async jobs: all {BURST} done") as notes:
        photos = list(probe_photos().items())
        jobs: list[tuple[str, str]] = []
        worker = stack.container("worker")
        restarts_before = _restarts(stack, worker)
        for i in range(BURST):
            if i == BURST // 2:
                statuses = [gateway.job(job_id)["status"] for job_id, _ in jobs]
                _crash(stack, worker)
                notes.append(f"killed after {i} sent ({statuses.count('done')} done)")
            member, photo = photos[i % len(photos)]
            accepted = gateway.diagnose(photo, run_async=True)
            assert accepted.status_code == 202, f"job {i}: {accepted.status_code} {accepted.text[:200]}"
            jobs.append((accepted.json()["job_id"], member))
        for job_id, member in jobs:
            job = poll(f"job {job_id}", partial(_finished_job, gateway, job_id), timeout_s=RECOVERY_S)
            assert job["status"] == "done", job
            assert job["result"]["faces"][0]["matches"][0]["slug"] == member, job_id
        restarts = _restarts(stack, worker) - restarts_before
        assert restarts == 1, f"the killed worker restarted {restarts} times (restart: unless-stopped)"
        notes.append(f"{BURST} done with the right member, the worker restarted by its policy")


def restart_redis(checks: Checklist, stack: Stack, gateway: Gateway) -> None:
    with checks.check("Redis stopped: gateway says so; started again: gateway recovers") as notes:
        member, photo = next(iter(probe_photos().items()))
        stack("stop", "redis", timeout=120)
        poll("gateway not ready without Redis", lambda: True if not gateway.ready() else None, timeout_s=60)
        refused = gateway.diagnose(photo)
        assert refused.status_code == 503, f"{refused.status_code} {refused.text[:200]}"
        code = refused.json()["error"]["code"]
        assert code == "broker_unavailable", code
        stack("start", "redis", timeout=300)
        poll("gateway ready again", lambda: True if gateway.ready() else None, timeout_s=180)
        poll("a diagnosis after the restart", lambda: _answers(gateway, photo, member), timeout_s=180, every_s=3)
        notes.append(f"503 {code} while down, ready and diagnosing again after")


def _crash(stack: Stack, container: str) -> None:
    """SIGKILL from the host to the container's init, as the OOM killer would do it: unlike `docker kill`, which counts
    as a stop by the user, a crash leaves the restart policy to act."""
    pid = int(stack.engine.podman("inspect", "--format", "{{.State.Pid}}", container).stdout)
    os.kill(pid, signal.SIGKILL)


def _restarts(stack: Stack, container: str) -> int:
    return int(stack.engine.podman("inspect", "--format", "{{.RestartCount}}", container).stdout)


def _finished_job(gateway: Gateway, job_id: str, *, admin: bool = False) -> dict[str, Any] | None:
    job = gateway.admin_job(job_id) if admin else gateway.job(job_id)
    return job if job["status"] in FINISHED else None


def _on_version(gateway: Gateway, photo: Path, member: str, version: int) -> bool | None:
    best, _, versions = gateway.top_member(photo)
    assert best == member, best
    return True if versions.get(GROUP) == version else None


def _answers(gateway: Gateway, photo: Path, member: str) -> bool | None:
    answer = gateway.diagnose(photo)
    if answer.status_code != 200:
        return None
    best = answer.json()["faces"][0]["matches"][0]["slug"]
    assert best == member, best
    return True
