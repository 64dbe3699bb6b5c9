"""The scrape acceptance test in the distributed mode: the admin API of a `lookalike serve` gateway queues the
scrape, the ingestion worker (`lookalike ingest-worker`) fetches, curates and publishes, the diagnose workers
serve the new version; then a member deleted through the API is gone from the very next diagnosis, which a
diagnose worker answers from its own registry.

Starts from an empty PostgreSQL database of its own (not the session's demo gallery). The site and the bar are
those of tests/ingest/test_scrape.py (see tests/scrape_site.py). Real Redis, PostgreSQL and processes: without
them this skips, except under CI=true.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
import redis
from dist_harness import (
    ADMIN_TOKEN,
    FACES,
    REDIS_URL,
    Cluster,
    Stack,
    ensure_postgres,
    redis_ping,
    require,
    worker_pid,
)
from psycopg import sql
from scrape_site import HOSTILE, HOSTILE_PAGE, MEMBERS, Site, add_members, serve, tally
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.postgres
GROUP = "site"
MIN_KEPT = 0.95
MIN_DROPPED = 0.90
SCRAPE_REDIS_DB = int(os.environ.get("LOOKALIKE_TEST_SCRAPE_REDIS_DB", "12"))


def flush(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with serve() as running:
        yield running


@pytest.fixture(scope="module")
def empty_stack(suite_lock: None, postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A database of this module's own, empty (the gateway migrates it at start), and a Redis db of its own: the
    session's db may carry messages of other clusters, which this one's workers must not take."""
    broker = urlunsplit(urlsplit(REDIS_URL)._replace(path=f"/{SCRAPE_REDIS_DB}"))
    require(redis_ping(broker), f"no Redis at {broker} (set LOOKALIKE_TEST_REDIS_URL)")
    name = f"lk_scrape_{uuid.uuid4().hex[:12]}"
    flush(broker)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    root = tmp_path_factory.mktemp("dist-scrape")
    stack = Stack(database_url=url, redis_url=broker, ingest_dir=root / "ingest-host")
    stack.ingest_dir.mkdir()
    try:
        yield stack
    finally:
        flush(broker)
        ensure_postgres(postgres_url)
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _ready_but_empty(url: str, **kwargs: Any) -> httpx.Response:
    """/readyz as the harness reads it, except that an empty gallery counts as ready: every check is ok but the
    index, which no scrape has filled yet (the harness waits for a gallery that is served)."""
    response = _HTTPX_GET(url, **kwargs)
    if url.endswith("/readyz") and response.status_code == 503:
        checks = response.json()["checks"]
        if checks.pop("index", "").startswith("empty") and all(v == "ok" for v in checks.values()):
            return httpx.Response(200, json={"ready": True})
    return response


_HTTPX_GET = httpx.get


@pytest.fixture(scope="module")
def cluster(empty_stack: Stack, site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    env = {
        "LOOKALIKE_FETCH_ALLOW": f"127.0.0.1:{site.port}",
        "LOOKALIKE_FETCH_INTERVAL_S": "0.02",
        "LOOKALIKE_FETCH_DEADLINE_S": "2",
        "LOOKALIKE_MAX_UPLOAD_BYTES": "2000000",
    }
    running = Cluster(empty_stack, tmp_path_factory.mktemp("scrape-cluster"), **env)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(httpx, "get", _ready_but_empty)
            running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def api(cluster: Cluster) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cluster.base_url, timeout=120, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as c:
        yield c


def wait_job(api: httpx.Client, job_id: str, timeout: float = 240.0) -> tuple[dict[str, Any], int]:
    """The finished job, and how many distinct progress snapshots were seen while it ran."""
    deadline = time.monotonic() + timeout
    seen: list[Any] = []
    while True:
        job: dict[str, Any] = api.get(f"/admin/jobs/{job_id}").raise_for_status().json()
        if job["progress"] and job["progress"] not in seen:
            seen.append(job["progress"])
        if job["status"] in ("done", "failed"):
            return job, len(seen)
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


def diagnose(cluster: Cluster, client: httpx.Client, member: str) -> dict[str, Any]:
    data = (FACES / "probes" / member / "11.jpg").read_bytes()
    response = cluster.post_diagnose(client, data, group=GROUP)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_scrape_on_the_ingest_worker_then_delete_a_member(cluster: Cluster, site: Site, api: httpx.Client) -> None:
    ids = add_members(api, site, GROUP)
    started = time.monotonic()
    accepted = api.post("/admin/scrape", json={"group": GROUP})
    assert accepted.status_code == 202, accepted.text
    assert api.post("/admin/scrape", json={"group": GROUP}).status_code == 409  # one live scrape per scope
    job, snapshots = wait_job(api, accepted.json()["job_id"])
    seconds = time.monotonic() - started
    assert job["status"] == "done", f"{job}\n{cluster.log_tails()}"
    assert worker_pid(job["worker"]) in cluster.procs["ingest"].group(), job  # the ingestion worker ran it

    rows = cluster.query(
        "SELECT m.slug, p.source_url, p.status, p.reason FROM photos p JOIN members m ON m.id = p.member_id "
        "JOIN groups g ON g.id = m.group_id WHERE g.slug = %s",
        (GROUP,),
    )
    counts = tally(site, [(r["slug"], r["source_url"], r["status"], r["reason"]) for r in rows])
    print(f"\n{counts.summary(f'distributed scrape ({seconds:.1f}s, {snapshots} progress snapshots)')}")
    print(f"job totals {json.dumps(job['result']['totals'])}")
    why = f"{counts.summary('distributed scrape')}\n{counts.details()}"
    assert counts.kept_share >= MIN_KEPT and counts.dropped_share >= MIN_DROPPED, why
    refused = job["result"]["members"][f"{GROUP}/{HOSTILE_PAGE}"]["refused"]
    assert refused == dict(Counter(HOSTILE.values())), refused

    version = job["result"]["index_versions"][GROUP]["version_id"]
    with cluster.client() as client:
        for slug in MEMBERS:
            result = diagnose(cluster, client, slug)
            assert result["index_versions"] == {GROUP: version}
            assert result["faces"][0]["matches"][0]["slug"] == slug, result

        # Deleted through the API: the gateway publishes the group without the member before answering, and
        # the next diagnosis, answered by a diagnose worker, does not name them.
        gone = "nibu_akari"
        deleted = api.delete(f"/admin/members/{ids[gone]}")
        assert deleted.status_code == 200, deleted.text
        body = deleted.json()
        assert body["deleted"]["members"] == 1 and body["deleted"]["faces"] >= 8, body
        for _ in range(4):  # both diagnose workers, whichever takes each job
            result = diagnose(cluster, client, gone)
            assert result["index_versions"] == {GROUP: body["index_version"]}
            assert gone not in {m["slug"] for f in result["faces"] for m in f["matches"]}, result
    cluster.check_running()
