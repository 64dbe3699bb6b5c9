"""Chaos against the real deployment: a worker process SIGKILLed mid-job, a job that kills every worker that runs
it, Redis restarted (without persistence) during a burst, PostgreSQL stopped. Each test prints its counts.

Whatever a test does to Redis or PostgreSQL, it starts them again in `finally`, and the session fixtures check
once more at the end.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis
from dist_harness import (
    FACES,
    FINISHED,
    MAX_ATTEMPTS,
    SOURCES,
    Cluster,
    Reference,
    Stack,
    alive,
    comparable,
    ensure_postgres,
    ensure_redis,
    mark,
    noise_png,
    pg_ready,
    redis_address,
    redis_ping,
    require,
    start_cluster,
    start_postgres,
    start_redis,
    stop_postgres,
    stop_redis,
    upscaled_png,
    wait_for,
    worker_pid,
)
from leak_scan import UPLOAD_PREFIX, scan_files, scan_redis

pytestmark = pytest.mark.postgres
N_INFLIGHT = 50
FACE_SOURCES = [s for s in SOURCES if "noface" not in s.parts]


@pytest.fixture(scope="module")
def cluster(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # The reconciler re-sends what the broker lost after 3 s, checking every second.
    yield from start_cluster(stack, tmp_path_factory.mktemp("chaos"))


def submit_async(cluster: Cluster, payloads: list[bytes], *, clients: int = 8) -> list[str]:
    def one(data: bytes) -> str:
        with cluster.client() as c:
            response = cluster.post_diagnose(c, data, run_async=True)
        assert response.status_code == 202, response.text
        job_id: str = response.json()["job_id"]
        return job_id

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, payloads))


def sigkill_child(cluster: Cluster, pid: int) -> None:
    """SIGKILL a prefork child of one of this cluster's diagnose workers (never anything else)."""
    assert pid in cluster.worker_children(), f"{pid} is not a worker child of this cluster"
    os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- (a) a worker killed mid-job


def test_worker_killed_mid_job_loses_nothing(cluster: Cluster, reference: Reference) -> None:
    photo = upscaled_png(FACES / "probes" / "hori_miona" / "11.jpg", 2400)
    started = time.monotonic()
    status, expected = reference(photo, None)
    assert status == "done"
    print(f"\nslow photo: 2400x2400 PNG, {len(photo)} bytes, embedded diagnose {time.monotonic() - started:.2f}s")
    payload = mark(photo, cluster.token())  # one input, sent 50 times
    since = datetime.now(UTC) - timedelta(seconds=1)
    masters = {w.name: w.pid for w in cluster.diagnose_workers}
    children_before = cluster.worker_children()
    ids = submit_async(cluster, [payload] * N_INFLIGHT)

    # Kill the child running a job (read from the job row), once on each worker, until two kills hit a job.
    interrupted: list[tuple[str, int, str]] = []
    missed = 0
    deadline = time.monotonic() + 60
    while len(interrupted) < 2 and time.monotonic() < deadline:
        done_workers = {w for _, _, w in interrupted}
        # Each kill hits another job: the one killed first, redelivered, may be what the other worker runs next.
        done_jobs = {j for j, _, _ in interrupted}
        target = None
        for row in cluster.query("SELECT * FROM jobs WHERE id = ANY(%s) AND status = 'running'", (ids,)):
            pid = worker_pid(row["worker"])
            owner = cluster.worker_children().get(pid or -1)
            if pid is not None and owner is not None and owner not in done_workers and row["id"] not in done_jobs:
                target = (row, pid, owner)
                break
        if target is None:
            time.sleep(0.01)
            continue
        row, pid, owner = target
        sigkill_child(cluster, pid)
        wait_for(lambda pid=pid: not alive(pid), 10, f"worker child {pid} to die")
        after = cluster.job_row(row["id"])
        assert after is not None
        if after["attempts"] > row["attempts"] or (after["status"] == "running" and after["worker"] == row["worker"]):
            interrupted.append((row["id"], pid, owner))
        else:  # it finished between the read and the kill: try another one
            missed += 1
    assert len(interrupted) == 2, f"no job caught running ({missed} missed)"

    rows = cluster.wait_finished(ids, timeout=120)
    assert len(cluster.jobs_since(since)) == N_INFLIGHT  # one row per job, no duplicates
    assert Counter(r["status"] for r in rows.values()) == {"done": N_INFLIGHT}
    for job_id, row in rows.items():
        assert comparable(row["result"]) == comparable(expected), job_id
        assert row["error"] is None and row["finished_at"] is not None
    for job_id, _, _ in interrupted:
        assert rows[job_id]["attempts"] == 2, rows[job_id]  # the killed attempt, then the one that finished
    # The masters live on, each with a fresh child in place of the killed one.
    for worker in cluster.diagnose_workers:
        assert worker.running() and worker.pid == masters[worker.name]
        assert worker.children(), f"{worker.name} has no child"
    killed = {pid for _, pid, _ in interrupted}
    assert not killed & set(cluster.worker_children())
    deliveries = cluster.deliveries(ids)
    assert deliveries >= N_INFLIGHT + len(interrupted)
    with cluster.client() as c:
        for job_id, _, _ in interrupted:  # the API reports the same
            job = c.get(f"/jobs/{job_id}").json()
            assert (job["status"], job["attempts"]) == ("done", 2)
    print(
        f"killed {len(interrupted)} worker children mid-job ({missed} missed the job); "
        f"{N_INFLIGHT} submitted, {Counter(r['status'] for r in rows.values())}, "
        f"attempts {dict(Counter(r['attempts'] for r in rows.values()))}, deliveries {deliveries} "
        f"(requeued by reject_on_worker_lost, plus reconciler re-sends of long-queued jobs); "
        f"children before {sorted(children_before)}, after {sorted(cluster.worker_children())}; "
        f"all {N_INFLIGHT} results identical"
    )
    cluster.check_running()


# --------------------------------------------------------------------------- (b) a job that kills its workers


def test_job_killing_every_worker_fails_after_max_attempts(cluster: Cluster, reference: Reference) -> None:
    poison = noise_png(6000)
    started = time.monotonic()
    poison_status, _ = reference(poison, None)
    cost = time.monotonic() - started
    print(f"\npoison: 6000x6000 PNG of noise, {len(poison)} bytes, embedded diagnose {cost:.2f}s ({poison_status})")
    poison = mark(poison, cluster.token())
    others = [FACE_SOURCES[n % len(FACE_SOURCES)] for n in range(20)]
    with cluster.client() as c:
        accepted = cluster.post_diagnose(c, poison, run_async=True)
    assert accepted.status_code == 202, accepted.text
    poison_id = accepted.json()["job_id"]
    # Other jobs arrive meanwhile (from a thread: the watch below must not miss the first attempt).
    other_ids: list[str] = []
    submitter = threading.Thread(
        target=lambda: other_ids.extend(
            submit_async(cluster, [mark(s.read_bytes(), cluster.token()) for s in others], clients=4)
        )
    )
    submitter.start()

    # Whenever the poison job starts a new attempt, SIGKILL the process that runs it.
    kills: list[tuple[int, int, float]] = []
    deadline = time.monotonic() + 120
    while True:
        row = cluster.job_row(poison_id)
        assert row is not None
        if row["status"] in FINISHED:
            break
        assert time.monotonic() < deadline, f"poison job still {row['status']} after {len(kills)} kills"
        pid = worker_pid(row["worker"])
        if row["status"] == "running" and row["attempts"] > len(kills) and pid in cluster.worker_children():
            sigkill_child(cluster, pid)
            ran = (datetime.now(UTC) - row["started_at"]).total_seconds()
            kills.append((row["attempts"], pid, ran))
        time.sleep(0.01)

    submitter.join(timeout=120)
    assert len(other_ids) == len(others)
    assert row["status"] == "failed", row
    assert row["error"]["code"] == "worker_lost", row["error"]
    assert row["attempts"] == MAX_ATTEMPTS == len(kills)
    assert row["result"] is None
    rows = cluster.wait_finished(other_ids, timeout=120)
    for source, job_id in zip(others, other_ids, strict=True):
        assert rows[job_id]["status"] == "done", rows[job_id]
        assert comparable(rows[job_id]["result"]) == comparable(reference(source.read_bytes(), None)[1])
    client = redis.Redis.from_url(cluster.stack.redis_url)
    try:
        assert not client.exists(UPLOAD_PREFIX + poison_id)  # the failed job's bytes are gone too
    finally:
        client.close()
    with cluster.client() as c:
        job = c.get(f"/jobs/{poison_id}").json()
    assert (job["status"], job["error"]["code"], job["attempts"]) == ("failed", "worker_lost", MAX_ATTEMPTS)
    print(
        f"poison job: {len(kills)} attempts, each SIGKILLed "
        f"({', '.join(f'#{a} pid {p} after {t:.2f}s' for a, p, t in kills)}), then failed: {row['error']['message']}; "
        f"the other {len(other_ids)} jobs: {dict(Counter(r['status'] for r in rows.values()))}"
    )
    cluster.check_running()


# --------------------------------------------------------------------------- (c) Redis restarted during a burst


def test_redis_restart_during_a_burst(cluster: Cluster, stack: Stack, reference: Reference) -> None:
    host, _ = redis_address(stack.redis_url)
    require(host in ("127.0.0.1", "localhost"), "Redis is not on loopback: it cannot be restarted here")
    require(shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None, "no redis-server")
    since = datetime.now(UTC) - timedelta(seconds=1)
    answers: list[dict[str, Any]] = []
    lock = threading.Lock()
    stop = threading.Event()
    outage: dict[str, float] = {}

    def submitter(k: int) -> None:
        with cluster.client(timeout=120) as c:
            n = 0
            while not stop.is_set():
                source = FACE_SOURCES[(7 * k + n) % len(FACE_SOURCES)]
                # Three threads submit async, one waits for its answers: a sync wait never stalls the burst.
                mode = "sync" if k == 0 else "async"
                sent = time.monotonic()
                entry: dict[str, Any] = {"source": source, "mode": mode, "sent": sent}
                data = mark(source.read_bytes(), cluster.token())
                try:
                    response = cluster.post_diagnose(c, data, run_async=mode == "async")
                except httpx.TransportError as exc:
                    entry.update(status=0, body={"transport": repr(exc)})
                else:
                    entry.update(status=response.status_code, type=response.headers.get("content-type"))
                    try:
                        entry["body"] = response.json()
                    except ValueError:
                        entry["body"] = {"text": response.text[:200]}
                entry["took"] = time.monotonic() - sent
                with lock:
                    answers.append(entry)
                n += 1
                time.sleep(0.25)  # about what the two workers get through: a burst, not a backlog

    threads = [threading.Thread(target=submitter, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(2.0)
        outage["down"] = time.monotonic()
        stop_redis(stack.redis_url)
        time.sleep(3.0)
        outage["restart"] = time.monotonic()  # Redis may serve before start_redis returns
        start_redis(stack.redis_url)
        outage["up"] = time.monotonic()
        time.sleep(3.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=180)
        ensure_redis(stack.redis_url)

    # Every answer is a JSON answer from the contract; never a 500, never a dropped connection.
    statuses = Counter((a["mode"], a["status"], a["body"].get("error", {}).get("code")) for a in answers)
    assert all(a["status"] in (200, 202, 503) for a in answers), statuses
    assert all(a["type"] == "application/json" for a in answers), statuses
    for a in answers:
        if a["status"] == 503:
            assert a["body"]["error"]["code"] in ("broker_unavailable", "upload_lost"), a["body"]
    # Answered while Redis was down (a submission sent late in the outage may retry its way past the restart
    # and be accepted; it is then one of the accepted jobs that must end, checked above and below).
    during = [a for a in answers if outage["down"] + 0.5 < a["sent"] and a["sent"] + a["took"] < outage["restart"]]
    unavailable = [a for a in during if a["body"].get("error", {}).get("code") == "broker_unavailable"]
    assert unavailable, f"no submission during the outage was answered broker_unavailable: {statuses}"
    assert all(a["status"] == 503 for a in during), Counter(a["status"] for a in during)
    # Once Redis answers again, so does the gateway: no request may fail on a connection the restart killed.
    after = [a for a in answers if a["sent"] > outage["up"]]
    assert after and all(a["status"] in (200, 202) for a in after), Counter(
        (a["status"], a["body"].get("error", {}).get("code")) for a in after
    )

    # Every accepted job ends done or failed with a reason once the reconciler has had its time.
    deadline = time.monotonic() + 90
    while True:
        rows = cluster.jobs_since(since)
        unfinished = [r for r in rows if r["status"] not in FINISHED]
        if not unfinished:
            break
        assert time.monotonic() < deadline, f"{len(unfinished)} jobs unfinished: {unfinished[:3]}"
        time.sleep(0.2)
    outcomes = Counter((r["status"], (r["error"] or {}).get("code")) for r in rows)
    for r in rows:
        if r["status"] == "failed":
            assert r["error"]["code"] in ("broker_unavailable", "upload_lost"), r["error"]
    by_id = {r["id"]: r for r in rows}
    for a in answers:
        expected = comparable(reference(a["source"].read_bytes(), None)[1])
        if a["status"] == 200:
            assert comparable(a["body"]) == expected
        elif a["status"] == 202:
            row = by_id[a["body"]["job_id"]]
            assert row["status"] == "failed" or comparable(row["result"]) == expected

    # A restart while the gateway is idle: its pooled connections all died unseen; the next requests must still
    # work (each on a fresh connection), and so must the workers.
    try:
        stop_redis(stack.redis_url)
        start_redis(stack.redis_url)
    finally:
        ensure_redis(stack.redis_url)
    recovered = time.monotonic()
    with cluster.client() as c:
        idle_answers = [
            cluster.post_diagnose(c, mark(source.read_bytes(), cluster.token()), run_async=n % 2 == 1)
            for n, source in enumerate(FACE_SOURCES[:4])
        ]
        for n, answer in enumerate(idle_answers):
            assert answer.status_code == (202 if n % 2 else 200), answer.text
            result = cluster.wait_job_http(c, answer.json()["job_id"])["result"] if n % 2 else answer.json()
            assert comparable(result) == comparable(reference(FACE_SOURCES[n].read_bytes(), None)[1])
    print(
        f"\nRedis down {outage['up'] - outage['down']:.1f}s during a burst of {len(answers)} submissions: "
        f"answers {dict(sorted(statuses.items(), key=str))}; {len(rows)} job rows: {dict(outcomes)}; "
        f"{cluster.deliveries(by_id)} deliveries; after a second restart while idle, 4 diagnoses took "
        f"{time.monotonic() - recovered:.2f}s"
    )
    cluster.check_running()


# --------------------------------------------------------------------------- (d) PostgreSQL stopped


def test_postgres_outage_answers_503_and_recovers(cluster: Cluster, postgres_url: str, reference: Reference) -> None:
    require(
        urlsplit(postgres_url).hostname in ("127.0.0.1", "localhost")
        and Path("/etc/postgresql").is_dir()
        and shutil.which("pg_ctlcluster") is not None
        and os.geteuid() == 0,
        "PostgreSQL is not a local cluster this test can stop and start (pg_ctlcluster as root)",
    )
    source = FACE_SOURCES[1]
    expected = comparable(reference(source.read_bytes(), None)[1])
    with cluster.client(timeout=30) as c:
        before = cluster.post_diagnose(c, mark(source.read_bytes(), cluster.token()), run_async=True)
        job_id = before.json()["job_id"]
        assert cluster.wait_job_http(c, job_id)["status"] == "done"
        down = time.monotonic()
        stop_postgres()
        try:
            during = {
                "POST /diagnose": cluster.post_diagnose(c, mark(source.read_bytes(), cluster.token())),
                "POST /diagnose?async": cluster.post_diagnose(
                    c, mark(source.read_bytes(), cluster.token()), run_async=True
                ),
                "GET /jobs/{id}": c.get(f"/jobs/{job_id}"),
                "GET /groups": c.get("/groups"),
            }
            ready = c.get("/readyz")
            health = c.get("/healthz")
        finally:
            start_postgres(postgres_url)
            ensure_postgres(postgres_url)
        up = time.monotonic()
        for what, response in during.items():
            assert response.status_code == 503, (what, response.status_code, response.text)
            assert response.json()["error"]["code"] == "database_unavailable", (what, response.text)
        assert ready.status_code == 503
        assert ready.json()["ready"] is False and ready.json()["checks"]["database"].startswith("error"), ready.text
        assert health.status_code == 200

        # No restart of the gateway or the workers: the next requests work again by themselves.
        tries = 0
        deadline = time.monotonic() + 60
        while True:
            tries += 1
            answer = cluster.post_diagnose(c, mark(source.read_bytes(), cluster.token()))
            if answer.status_code == 200 or time.monotonic() > deadline:
                break
            assert answer.status_code == 503, answer.text
            time.sleep(0.5)
        assert answer.status_code == 200, answer.text
        assert comparable(answer.json()) == expected
        recovered = time.monotonic()
        queued = cluster.post_diagnose(c, mark(source.read_bytes(), cluster.token()), run_async=True)
        assert queued.status_code == 202, queued.text
        job = cluster.wait_job_http(c, queued.json()["job_id"])
        assert job["status"] == "done" and comparable(job["result"]) == expected
        assert c.get("/readyz").status_code == 200
    print(
        f"\nPostgreSQL down {up - down:.1f}s: "
        + ", ".join(f"{w} {r.status_code} {r.json()['error']['code']}" for w, r in during.items())
        + f", readyz {ready.status_code} {ready.json()['checks']}; diagnose answered 200 again after {tries} "
        f"tries, {recovered - up:.1f}s after the restart"
    )
    cluster.check_running()


def test_no_upload_bytes_left_after_the_chaos(cluster: Cluster, stack: Stack) -> None:
    deadline = time.monotonic() + 60
    while any(r["status"] not in FINISHED for r in cluster.jobs_since(cluster.started_at)):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    prefix = stack.token_prefix.encode()
    reports = [
        scan_redis(stack.redis_url, cluster.uploads, prefix),
        scan_files([*cluster.worker_dirs.values(), cluster.workdir, stack.ingest_dir], cluster.uploads, prefix),
    ]
    print(f"\nprivacy after the chaos: {len(cluster.uploads)} distinct uploads looked for")
    for report in reports:
        print("  " + report.line())
        assert report.leaks == [], report.leaks[:20]


def test_servers_are_back(stack: Stack, postgres_url: str) -> None:
    """Whatever happened above, Redis and PostgreSQL run again (other tests need them)."""
    ensure_redis(stack.redis_url)
    ensure_postgres(postgres_url)
    assert redis_ping(stack.redis_url) and pg_ready(postgres_url)
