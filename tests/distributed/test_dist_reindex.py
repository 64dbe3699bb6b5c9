"""Re-indexing on the ingest worker while diagnoses run, one reindex per group at a time (409), and diagnose
workers on "other hosts": data dirs of their own that never saw the ingest host's index files, so every version
they serve is rebuilt from PostgreSQL - and answers like the original files do."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from dist_harness import (
    ADMIN_TOKEN,
    FACES,
    GROUP,
    SOURCES,
    Cluster,
    Reference,
    Stack,
    alive,
    comparable,
    mark,
    sha256_file,
    start_cluster,
    wait_for,
    worker_pid,
)

pytestmark = pytest.mark.postgres
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PROBES = sorted((FACES / "probes").rglob("*.jpg"))


@pytest.fixture(scope="module")
def cluster(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from start_cluster(stack, tmp_path_factory.mktemp("reindex"))


def test_reindex_while_diagnoses_run(cluster: Cluster, reference: Reference) -> None:
    old = cluster.active_version()["id"]
    answers: list[dict[str, Any]] = []
    stop = threading.Event()

    def diagnose_loop(k: int) -> None:
        with cluster.client() as c:
            n = 0
            while not stop.is_set():
                source = PROBES[(3 * k + n) % len(PROBES)]
                sent = time.monotonic()
                response = cluster.post_diagnose(c, mark(source.read_bytes(), cluster.token()))
                body = response.json()
                answers.append({"source": source, "sent": sent, "status": response.status_code, "body": body})
                n += 1

    threads = [threading.Thread(target=diagnose_loop, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    ingest = cluster.procs["ingest"]
    try:
        wait_for(lambda: len(answers) >= 4, 60, "the first diagnoses")
        with cluster.client() as c:
            refused = {
                "no token": c.post("/admin/reindex", json={"group": GROUP}),
                "wrong token": c.post(
                    "/admin/reindex", json={"group": GROUP}, headers={"Authorization": "Bearer " + "x" * 40}
                ),
                "unknown group": c.post("/admin/reindex", json={"group": "no-such-group"}, headers=ADMIN),
            }
            # The ingest worker is stopped for a moment, so the first job is certainly still queued for the second.
            ingest.signal_group(signal.SIGSTOP)
            try:
                first = c.post("/admin/reindex", json={"group": GROUP}, headers=ADMIN)
                second = c.post("/admin/reindex", json={"group": GROUP}, headers=ADMIN)
                queued = cluster.job_row(first.json()["job_id"])
            finally:
                ingest.signal_group(signal.SIGCONT)
            assert first.status_code == 202, first.text
            job_id = first.json()["job_id"]
            assert first.headers["location"] == f"/admin/jobs/{job_id}"
            assert second.status_code == 409, second.text
            assert second.json()["error"]["code"] == "job_conflict"
            assert queued is not None and queued["status"] == "queued" and queued["kind"] == "reindex"
            job = cluster.wait_job_http(c, job_id)
            switched = time.monotonic()
        assert job["status"] == "done", job
        new = job["result"]["version_id"]
        assert new > old and cluster.active_version()["id"] == new
        # Each worker process checks for a newer version at most once a second.
        wait_for(lambda: sum(1 for a in answers if a["sent"] > switched + 1.5) >= 6, 60, "diagnoses after the switch")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)

    assert refused["no token"].status_code == 401 and refused["wrong token"].status_code == 401
    assert refused["no token"].json()["error"]["code"] == "unauthorized"
    assert refused["unknown group"].status_code == 404
    assert refused["unknown group"].json()["error"]["code"] == "unknown_group"
    failed = [a for a in answers if a["status"] != 200]
    assert not failed, failed[:3]
    versions = [a["body"]["index_versions"][GROUP] for a in answers]
    assert set(versions) == {old, new}, Counter(versions)
    assert versions[0] == old
    late = [a["body"]["index_versions"][GROUP] for a in answers if a["sent"] > switched + 1.5]
    assert set(late) == {new}, Counter(late)
    # Same gallery, same calibration: the new version answers exactly as the old one did, and as the embedded
    # mode does on the files the ingest worker wrote.
    for a in answers:
        expected = comparable(reference(a["source"].read_bytes(), None)[1])
        assert comparable(a["body"]) == {**expected, "index_versions": a["body"]["index_versions"]}
        assert a["body"]["faces"] == expected["faces"]
    print(
        f"\nreindex {old} -> {new} under load: {len(answers)} diagnoses, all 200, versions {dict(Counter(versions))}; "
        f"second reindex while the first was queued: {second.status_code} {second.json()['error']['code']}; "
        f"no token {refused['no token'].status_code}, unknown group {refused['unknown group'].status_code}"
    )


def test_second_reindex_while_one_runs_is_409(cluster: Cluster) -> None:
    """Catch a reindex job running (the job row names its process), hold that process, ask again."""
    ingest = cluster.procs["ingest"]
    held = None
    tries = 0
    with cluster.client() as c:
        while held is None and tries < 5:
            tries += 1
            first = c.post("/admin/reindex", json={"group": GROUP}, headers=ADMIN)
            assert first.status_code == 202, first.text
            job_id = first.json()["job_id"]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                row = cluster.job_row(job_id)
                assert row is not None
                pid = worker_pid(row["worker"])
                if row["status"] == "running" and pid in ingest.children():
                    os.kill(pid, signal.SIGSTOP)
                    held = pid
                    break
                if row["status"] in ("done", "failed"):
                    break
                time.sleep(0.002)
            if held is not None:
                try:
                    second = c.post("/admin/reindex", json={"group": GROUP}, headers=ADMIN)
                    running = cluster.job_row(job_id)
                finally:
                    os.kill(held, signal.SIGCONT)
                assert second.status_code == 409, second.text
                assert second.json()["error"]["code"] == "job_conflict"
                assert running is not None and running["status"] == "running"
            job = cluster.wait_job_http(c, job_id)
            assert job["status"] == "done", job
        # Once it is done, the group can be re-indexed again.
        again = c.post("/admin/reindex", json={"group": GROUP}, headers=ADMIN)
        assert again.status_code == 202, again.text
        assert cluster.wait_job_http(c, again.json()["job_id"])["status"] == "done"
    assert held is not None, f"no reindex job caught running in {tries} tries"
    print(f"\nsecond reindex while one ran (caught on try {tries}): 409 job_conflict; a later one 202 and done")


def serve_on_both_workers(cluster: Cluster, reference: Reference) -> dict[str, int]:
    """Diagnose photos until each diagnose worker has answered some; every answer as the embedded mode's."""
    served: Counter[str] = Counter()
    with cluster.client() as c:
        for n in range(60):
            source = SOURCES[n % len(SOURCES)]
            accepted = cluster.post_diagnose(c, mark(source.read_bytes(), cluster.token()), run_async=True)
            assert accepted.status_code == 202, accepted.text
            job = cluster.wait_job_http(c, accepted.json()["job_id"])
            status, expected = reference(source.read_bytes(), None)
            assert job["status"] == status
            assert comparable(job["result"] if status == "done" else job["error"]) == comparable(expected)
            served[cluster.worker_children().get(worker_pid(job["worker"]) or -1, "gone")] += 1
            if n >= 8 and served["worker-a"] >= 2 and served["worker-b"] >= 2:
                break
    assert served["worker-a"] >= 2 and served["worker-b"] >= 2, served
    return dict(served)


def test_workers_on_other_hosts_rebuild_from_postgres(cluster: Cluster, stack: Stack, reference: Reference) -> None:
    version = cluster.active_version()
    published = stack.ingest_dir / "index" / version["path"] / "manifest.json"
    assert sha256_file(published) == version["sha256"]
    served = serve_on_both_workers(cluster, reference)
    for name, data_dir in cluster.worker_dirs.items():
        assert data_dir != stack.ingest_dir
        manifest = data_dir / "index" / version["path"] / "manifest.json"
        assert manifest.is_file(), f"{name} did not rebuild version {version['id']}"
        assert sha256_file(manifest) == version["sha256"], f"{name} rebuilt something else than the published version"
        log = cluster.procs[name].log.read_text(errors="replace")
        assert "rebuilding it from the database" in log
        assert "differs from the published manifest" not in log

    # A host that loses its cache: delete worker-a's index files and replace its process (SIGKILL the child;
    # the master forks a fresh one with nothing in memory), then it rebuilds from PostgreSQL again.
    worker = cluster.procs["worker-a"]
    shutil.rmtree(cluster.worker_dirs["worker-a"] / "index")
    [child] = worker.children()
    os.kill(child, signal.SIGKILL)
    wait_for(lambda: not alive(child) and len(worker.children()) == 1, 30, "a fresh worker-a child")
    rebuilt_before = worker.log.read_text(errors="replace").count("rebuilding it from the database")
    served_again = serve_on_both_workers(cluster, reference)
    manifest = cluster.worker_dirs["worker-a"] / "index" / version["path"] / "manifest.json"
    assert sha256_file(manifest) == version["sha256"]
    assert worker.log.read_text(errors="replace").count("rebuilding it from the database") == rebuilt_before + 1
    print(
        f"\nversion {version['id']} rebuilt from PostgreSQL by both diagnose workers (manifest sha256 equal to the "
        f"published one), answers equal to the embedded mode: {served}; after deleting worker-a's files and "
        f"replacing its process: rebuilt again, {served_again}"
    )
    cluster.check_running()
