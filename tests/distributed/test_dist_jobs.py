"""200 diagnoses through uvicorn and two Celery worker processes, each answer equal to the embedded mode's on the
same photo; then nothing of the uploads is left in Redis or on disk, and readiness and metrics describe the
deployment. Real Redis, real PostgreSQL, real processes: see dist_harness."""

from __future__ import annotations

import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from dist_harness import (
    FACES,
    GROUP,
    REPO,
    SOURCES,
    Cluster,
    Reference,
    Stack,
    comparable,
    mark,
    start_cluster,
)
from leak_scan import scan_files, scan_redis

from lookalike.config import Settings
from lookalike.errors import DifferentPeople
from lookalike.index.registry import IndexRegistry
from lookalike.pipeline.pipeline import Pipeline

pytestmark = pytest.mark.postgres
# Six rounds of the sources: each one sync and async, with and without the group, through 12 clients at once.
N_JOBS = 6 * len(SOURCES)
CLIENTS = 12


@pytest.fixture(scope="module")
def cluster(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # Nothing is lost here, so a patient reconciler never re-sends: every job must be delivered exactly once.
    yield from start_cluster(stack, tmp_path_factory.mktemp("jobs"), LOOKALIKE_RECONCILE_AFTER_S="120")


@dataclass(frozen=True)
class Outcome:
    n: int
    source: Path
    group: str | None
    mode: str
    job_id: str | None
    status: str
    body: dict[str, Any]


def test_marking_an_upload_keeps_its_diagnosis(reference: Reference) -> None:
    """The privacy checks tag each upload in a comment segment; the pixels, and so the answers, do not change."""
    for source in SOURCES:
        data = source.read_bytes()
        status, body = reference(data, None)
        marked_status, marked_body = reference(mark(data, "a-token-only-for-this-check"), None)
        assert marked_status == status, source
        assert comparable(marked_body) == comparable(body), source


def test_many_jobs_answer_like_the_embedded_mode(cluster: Cluster, reference: Reference) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    plan = [
        (n, SOURCES[n % len(SOURCES)], GROUP if n % 3 == 0 else None, "async" if n // len(SOURCES) % 2 else "sync")
        for n in range(N_JOBS)
    ]
    expected = {(src, group): reference(src.read_bytes(), group) for _, src, group, _ in plan}
    local = threading.local()

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = cluster.client()
        c: httpx.Client = local.client
        return c

    def run(n: int, source: Path, group: str | None, mode: str) -> Outcome:
        data = mark(source.read_bytes(), cluster.token())
        response = cluster.post_diagnose(client(), data, group=group, run_async=mode == "async")
        if mode == "async":
            assert response.status_code == 202, response.text
            accepted = response.json()
            # Whatever the job is by the time the gateway reads it back (a free worker starts it at once).
            assert accepted["status"] in ("queued", "running", "done", "failed")
            assert response.headers["location"] == accepted["location"] == f"/jobs/{accepted['job_id']}"
            job = cluster.wait_job_http(client(), accepted["job_id"])
            body = job["result"] if job["status"] == "done" else job["error"]
            return Outcome(n, source, group, mode, job["id"], job["status"], body)
        assert response.headers["content-type"] == "application/json"
        assert response.status_code != 202, f"a sync diagnose waited past LOOKALIKE_DIAGNOSE_WAIT_S: {response.text}"
        if response.status_code == 200:
            return Outcome(n, source, group, mode, None, "done", response.json())
        error = {**response.json()["error"], "status": response.status_code}
        return Outcome(n, source, group, mode, None, "failed", error)

    started = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        outcomes = list(pool.map(lambda p: run(*p), plan))
    elapsed = time.monotonic() - started

    mismatches = []
    for o in outcomes:
        status, body = expected[(o.source, o.group)]
        same = (o.status, comparable(o.body)) == (status, comparable(body))
        if not same:
            mismatches.append(f"#{o.n} {o.mode} {o.source.relative_to(SOURCES[0].parents[2])}: {o.status} {o.body}")
    assert not mismatches, "\n".join(mismatches[:10])

    # The jobs table: one row per request, each finished once, by one delivery, on one of the two workers.
    rows = cluster.jobs_since(since)
    assert len(rows) == N_JOBS
    assert all(r["status"] in ("done", "failed") for r in rows)
    attempts = Counter(r["attempts"] for r in rows)
    assert attempts == {1: N_JOBS}
    by_id = {r["id"]: r for r in rows}
    for o in outcomes:
        if o.job_id is not None:  # what a client read is what the row still says: the outcome was written once
            row = by_id[o.job_id]
            assert (row["status"], row["result"] if row["status"] == "done" else row["error"]) == (o.status, o.body)
            assert row["params"] == {"group": o.group}
    assert cluster.deliveries(by_id) == N_JOBS
    children = cluster.worker_children()
    served = Counter(r["worker"] for r in rows)
    served_by = Counter(children.get(int(w.rsplit(":", 1)[1]), "gone") for w in served.elements())
    assert set(served_by) == {"worker-a", "worker-b"}, served_by
    modes = Counter((o.mode, o.status) for o in outcomes)
    print(
        f"\n{N_JOBS} jobs in {elapsed:.1f}s ({N_JOBS / elapsed:.1f}/s) with {CLIENTS} clients: "
        f"{dict(sorted(modes.items()))}; rows {dict(Counter(r['status'] for r in rows))}, attempts {dict(attempts)}, "
        f"deliveries {cluster.deliveries(by_id)}, per worker {dict(served_by)}; all equal to the embedded mode"
    )


def test_several_photos_of_one_person_answer_like_the_embedded_mode(
    cluster: Cluster, stack: Stack, pipeline: Pipeline
) -> None:
    """Three photos of one person through the gateway, Redis and a Celery worker: the embedded mode's combined
    answer, to the last digit; with someone else among them, the same different_people error naming the photo."""
    registry = IndexRegistry(Settings(database_url=stack.database_url, data_dir=stack.ingest_dir), pipeline.pack_name)
    saito = [FACES / "probes" / "saito_asuka" / name for name in ("11.jpg", "12.jpg")]
    photos = [
        mark(p.read_bytes(), cluster.token()) for p in [*saito, REPO / "demo" / "gallery" / "saito_asuka" / "05.jpg"]
    ]
    expected = pipeline.diagnose_person(photos, galleries=registry.galleries(None)).model_dump(mode="json")
    with cluster.client() as client:
        response = cluster.post_photos(client, photos)
        assert response.status_code == 200, response.text
        assert comparable(response.json()) == comparable(expected)
        assert len(response.json()["faces"][0]["boxes"]) == 3
        stranger = mark((FACES / "strangers" / "bill_gates" / "04.jpg").read_bytes(), cluster.token())
        refused = cluster.post_photos(client, [photos[0], stranger, photos[1]])
    with pytest.raises(DifferentPeople) as embedded:
        pipeline.diagnose_person([photos[0], stranger, photos[1]], galleries=registry.galleries(None))
    assert refused.status_code == 422
    assert refused.json() == {"error": embedded.value.to_dict()}


def test_no_upload_bytes_remain_in_redis_or_on_disk(cluster: Cluster, stack: Stack) -> None:
    if not cluster.uploads:  # run alone: make a few uploads first
        with cluster.client() as c:
            for source in SOURCES[:4]:
                cluster.post_diagnose(c, mark(source.read_bytes(), cluster.token()))
    deadline = time.monotonic() + 60
    while any(r["status"] in ("queued", "running") for r in cluster.jobs_since(cluster.started_at)):
        assert time.monotonic() < deadline, "jobs still unfinished"
        time.sleep(0.2)
    prefix = stack.token_prefix.encode()
    reports = [
        scan_redis(stack.redis_url, cluster.uploads, prefix),
        scan_files([stack.ingest_dir, *cluster.worker_dirs.values(), cluster.workdir], cluster.uploads, prefix),
        scan_files([Path(tempfile.gettempdir())], cluster.uploads, prefix, since=cluster.started_at.timestamp() - 1),
    ]
    [stored] = cluster.query(
        "SELECT count(*) AS n FROM jobs WHERE params::text LIKE %s OR result::text LIKE %s OR error::text LIKE %s",
        [f"%{stack.token_prefix}%"] * 3,
    )
    print(f"\nprivacy: {len(cluster.uploads)} distinct uploads ({sum(cluster.uploads.values())} sent) looked for")
    for report in reports:
        print("  " + report.line())
    print(f"  postgres jobs rows holding an upload tag: {stored['n']}")
    assert reports[0].scanned > 0 and reports[1].scanned > 0
    for report in reports:
        assert report.leaks == [], report.line() + "\n" + "\n".join(report.leaks[:20])
    assert stored["n"] == 0


def test_readiness_and_metrics(cluster: Cluster) -> None:
    with cluster.client() as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        ready = c.get("/readyz")
        assert ready.status_code == 200, ready.text
        checks = ready.json()["checks"]
        assert ready.json()["ready"] is True
        assert checks["database"] == "ok" and checks["broker"] == "ok", checks
        assert checks["index"] == "ok: 1 groups", checks
        # One sync diagnosis, so that this test shows every metric even when it runs alone.
        answer = cluster.post_diagnose(c, mark(SOURCES[0].read_bytes(), cluster.token()))
        assert answer.status_code == 200, answer.text
        metrics = c.get("/metrics")
    assert metrics.status_code == 200
    text = metrics.text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    assert samples['lookalike_http_requests_total{method="POST",route="/diagnose",status="200"}'] >= 1
    assert samples['lookalike_queue_depth{queue="diagnose"}'] >= 0
    assert samples['lookalike_queue_depth{queue="reindex"}'] >= 0
    assert samples['lookalike_job_stage_seconds_count{stage="queue"}'] >= 1
    assert samples['lookalike_job_stage_seconds_count{stage="detect"}'] >= 1
    assert samples["lookalike_faces_total"] >= 1
    names = {"lookalike_http_requests_total", "lookalike_queue_depth", "lookalike_job_stage_seconds", "lookalike_faces"}
    print("\nmetrics: " + ", ".join(f"{n} ({sum(1 for s in samples if s.startswith(n))} samples)" for n in names))
    print(f"readyz: {checks}")
