"""The admin API over real HTTP: uvicorn in a subprocess on a copy of the demo gallery, real models, real SQLite.

The guard is checked on every route the app declares under /admin (new routes are covered without touching this
file); the flows create, upload, review and delete the way an operator would, and a deleted member must be gone
from the very next diagnosis.
"""

from __future__ import annotations

import io
import json
import re
import socket
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import numpy as np
import pytest
from fastapi.routing import APIRoute
from leak_scan import embedding_needles, scan_files
from test_api import DEMO_GROUP, FACES, MEMBERS, Gateway, _free_port, _server_env, assert_error, post_image, run_gateway

from lookalike.config import Settings

TOKEN = "admin-test-token-" + "0123456789abcdef" * 2
MAX_UPLOAD = 3_000_000
SQUAD = "squad"
PLACEHOLDERS = {"slug": "nobody", "member_id": "999999", "source_id": "999999", "photo_id": "999999", "job_id": "x"}


def demo(member: str, n: int) -> bytes:
    return (Path(__file__).resolve().parents[1] / "demo" / "gallery" / member / f"{n:02d}.jpg").read_bytes()


def probe(member: str, n: int = 11) -> bytes:
    return (FACES / "probes" / member / f"{n}.jpg").read_bytes()


# --------------------------------------------------------------------------- servers


@pytest.fixture(scope="module")
def gateway(demo_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    import shutil

    work = tmp_path_factory.mktemp("admin-gateway")
    shutil.copytree(demo_data_dir, work / "data")
    env = {"LOOKALIKE_ADMIN_TOKEN": TOKEN, "LOOKALIKE_MAX_UPLOAD_BYTES": str(MAX_UPLOAD)}
    with run_gateway(work / "data", work, **env) as running:
        yield running


@pytest.fixture(scope="module")
def api(gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.base_url, timeout=120, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c


@pytest.fixture(scope="module")
def anonymous(gateway: Gateway) -> Iterator[httpx.Client]:
    with gateway.client() as c:
        yield c


def _declared(routes: list[Any]) -> Iterator[tuple[str, set[str]]]:
    """(path, methods) of every API route, included routers expanded (FastAPI >= 0.16x keeps them nested)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route.path, set(route.methods)
        elif hasattr(route, "effective_route_contexts"):
            for context in route.effective_route_contexts():
                yield context.path, set(context.methods)


def admin_routes() -> list[tuple[str, str]]:
    """(method, path with placeholders filled) of every route the app declares under /admin."""
    from services.gateway.app import create_app

    app = create_app(Settings(admin_token=TOKEN))
    out = []
    for path, methods in _declared(app.routes):
        # "/admin" itself is the console page, public: it holds no data and calls these routes with the token.
        if path.startswith("/admin/"):
            filled = re.sub(r"\{(\w+)\}", lambda m: PLACEHOLDERS[m.group(1)], path)
            out += [(method, filled) for method in sorted(methods)]
    return out


ROUTES = admin_routes()


def db(gateway: Gateway) -> sqlite3.Connection:
    return sqlite3.connect(gateway.data_dir / "lookalike.db")


def wait_job(api: httpx.Client, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = api.get(f"/admin/jobs/{job_id}").raise_for_status().json()
        if job["status"] in ("done", "failed"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']}"
        time.sleep(0.1)


def names_in(result: dict[str, Any]) -> set[str]:
    return {m["slug"] for face in result["faces"] for m in face["matches"]}


def member_id(api: httpx.Client, group: str, slug: str) -> int:
    [row] = [m for m in httpx.get(f"{api.base_url}/members", params={"group": group}).json() if m["slug"] == slug]
    return int(row["id"])


# --------------------------------------------------------------------------- the guard


def test_every_admin_route_is_listed() -> None:
    paths = {path for _, path in ROUTES}
    assert len(ROUTES) >= 20, ROUTES
    assert {"/admin/reindex", "/admin/scrape", "/admin/jobs", "/admin/review", "/admin/groups"} <= paths


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_admin_route_refuses_without_a_valid_token(anonymous: httpx.Client, method: str, path: str) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-of-the-same-kind-0123456789abcdef"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
    ):
        response = anonymous.request(method, path, headers=headers, json={})
        assert_error(response, 401, "unauthorized")
        assert TOKEN not in response.text


def test_anonymous_upload_is_refused_before_its_body_is_read(gateway: Gateway) -> None:
    """The request announces a large multipart body and sends only its first bytes: the 401 must come without
    the gateway waiting for (or parsing) the rest."""
    host, port = gateway.base_url.removeprefix("http://").split(":")
    head = (
        "POST /admin/members/1/photos HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "Content-Type: multipart/form-data; boundary=xyz\r\n"
        f"Content-Length: {MAX_UPLOAD // 2}\r\n\r\n"
        '--xyz\r\nContent-Disposition: form-data; name="files"; filename="a.jpg"\r\n\r\n'
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode() + b"\xff\xd8\xff" + b"\0" * 1000)
        answer = ""
        while '"}}' not in answer:  # the end of the JSON error body
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk.decode(errors="replace")
    assert answer.startswith("HTTP/1.1 401"), answer
    assert '"code":"unauthorized"' in answer


def test_admin_routes_answer_403_without_a_configured_token(tmp_path: Path) -> None:
    """The token is not configured: the admin API is off whatever the client sends (the CLI does the work)."""
    with run_gateway(tmp_path / "data", tmp_path, expect_ready=False) as bare, bare.client() as c:
        for method, path in ROUTES:
            for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}, {"Authorization": "Bearer x"}):
                assert_error(c.request(method, path, headers=headers, json={}), 403, "admin_disabled")


def test_openapi_documents_the_guard_and_the_errors(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    operations = [
        (path, method, op)
        for path, item in spec["paths"].items()
        if path.startswith("/admin")
        for method, op in item.items()
    ]
    assert len(operations) == len(ROUTES)
    for path, method, op in operations:
        assert {"401", "403"} <= set(op["responses"]), (method, path)
        assert op.get("security"), (method, path)
        if "{" in path:
            assert "404" in op["responses"], (method, path)


# --------------------------------------------------------------------------- start-up refusals


def start_refused(tmp_path: Path, **env: str) -> str:
    command = [sys.executable, "-m", "uvicorn", "services.gateway.app:create_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(_free_port())]
    done = subprocess.run(
        command, cwd=tmp_path, env=_server_env(tmp_path / "data", **env), capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_a_short_token_stops_the_start(tmp_path: Path) -> None:
    short = "0123456789abcdef0123456789abcde"  # 31 characters: 124 bits
    out = start_refused(tmp_path, LOOKALIKE_ADMIN_TOKEN=short)
    assert "LOOKALIKE_ADMIN_TOKEN is 31 characters; it must have at least 32" in out
    assert short not in out  # the secret is not echoed


def test_distributed_mode_needs_a_token(tmp_path: Path) -> None:
    out = start_refused(tmp_path, LOOKALIKE_BROKER_URL="redis://127.0.0.1:1/0")
    assert "distributed mode" in out and "LOOKALIKE_ADMIN_TOKEN is not" in out


# --------------------------------------------------------------------------- groups, members, sources


def test_group_and_member_crud(api: httpx.Client) -> None:
    created = api.post("/admin/groups", json={"slug": SQUAD, "name": "The Squad"})
    assert created.status_code == 201, created.text
    assert created.json() == {
        "slug": SQUAD, "name": "The Squad", "members": 0, "index_version": None, "threshold": None,
        "lookalike_threshold": None, "photos": {},
    }  # fmt: skip
    assert_error(api.post("/admin/groups", json={"slug": SQUAD, "name": "Again"}), 409, "already_exists")
    assert_error(api.post("/admin/groups", json={"slug": "Bad Slug", "name": "x"}), 422, "invalid_parameter")
    assert api.patch(f"/admin/groups/{SQUAD}", json={"name": "Squad"}).json()["name"] == "Squad"
    assert_error(api.patch("/admin/groups/nobody", json={"name": "x"}), 404, "unknown_group")

    groups = {g["slug"]: g for g in api.get("/admin/groups").json()}
    assert groups[DEMO_GROUP]["members"] == 5 and groups[DEMO_GROUP]["index_version"] is not None
    assert groups[DEMO_GROUP]["photos"] == {"ok": 25}

    made = api.post(f"/admin/groups/{SQUAD}/members", json={"slug": "hori", "name": "Hori", "meta": {"born": 1997}})
    assert made.status_code == 201, made.text
    hori = made.json()
    assert hori["group"] == SQUAD and hori["active"] and hori["meta"] == {"born": 1997} and hori["photos"] == {}
    dup = api.post(f"/admin/groups/{SQUAD}/members", json={"slug": "hori", "name": "Again"})
    assert_error(dup, 409, "already_exists")
    assert_error(api.post("/admin/groups/nobody/members", json={"slug": "x", "name": "x"}), 404, "unknown_group")

    renamed = api.patch(f"/admin/members/{hori['id']}", json={"name": "Miona Hori", "meta": {}})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Miona Hori" and renamed.json()["meta"] == {}
    assert renamed.json()["reindex"] in ("queued", "already_queued")  # names are part of an index version
    unchanged = api.patch(f"/admin/members/{hori['id']}", json={"meta": {"x": 1}}).json()
    assert unchanged["reindex"] is None  # meta is not
    assert_error(api.patch("/admin/members/999999", json={"name": "x"}), 404, "not_found")


def test_sources(api: httpx.Client) -> None:
    hori = member_id(api, SQUAD, "hori")
    url = f"/admin/members/{hori}/sources"
    page = {"kind": "web_page", "value": "https://photos.example/members/hori/", "options": {"depth": 0}}
    added = api.post(url, json=page)
    assert added.status_code == 201, added.text
    source = added.json()
    assert source["kind"] == "web_page" and source["options"] == {"depth": 0} and source["last_scraped_at"] is None
    assert_error(api.post(url, json={"kind": "ftp", "value": "x"}), 422, "invalid_parameter")
    assert_error(api.post(url, json={**page, "options": {"colour": "red"}}), 422, "invalid_parameter")
    assert_error(api.post(url, json={**page, "options": {"depth": "deep"}}), 422, "invalid_parameter")
    search = api.post(url, json={"kind": "search", "value": "hori miona"})
    assert search.status_code == 501 and search.json()["error"]["code"] == "search_not_configured", search.text
    assert_error(api.post("/admin/members/999999/sources", json=page), 404, "not_found")
    assert [s["id"] for s in api.get(url).json()] == [source["id"]]
    assert api.delete(f"/admin/sources/{source['id']}").status_code == 204
    assert_error(api.delete(f"/admin/sources/{source['id']}"), 404, "not_found")
    assert api.get(url).json() == []


# --------------------------------------------------------------------------- uploads, jobs, scrape scope


def test_upload_photos_then_the_group_is_served(api: httpx.Client) -> None:
    hori = member_id(api, SQUAD, "hori")
    files = [("files", (f"hori-{n}.jpg", demo("hori_miona", n), "image/jpeg")) for n in (1, 3, 4)]
    files.append(("files", ("probe.jpg", probe("hori_miona", 12), "image/jpeg")))
    response = api.post(f"/admin/members/{hori}/photos", files=files)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/admin/jobs/{response.json()['job_id']}"
    job = wait_job(api, response.json()["job_id"])
    assert job["status"] == "done", job
    assert job["kind"] == "upload" and job["params"]["files"] == 4
    counts = job["result"]["members"][f"{SQUAD}/hori"]
    assert counts["stored"] == 4 and counts["ok"] == 4, counts
    assert job["result"]["index_versions"][SQUAD]["n_faces"] == 4

    # One ZIP is one job as well; a second member makes the group's threshold calibrated, not a fallback.
    ikoma = api.post(f"/admin/groups/{SQUAD}/members", json={"slug": "ikoma", "name": "Rina Ikoma"}).json()["id"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for n in (1, 2, 3):
            archive.writestr(f"ikoma/{n}.jpg", demo("ikoma_rina", n))
    zipped = api.post(f"/admin/members/{ikoma}/photos", files={"files": ("ikoma.zip", buffer.getvalue())})
    job = wait_job(api, zipped.json()["job_id"])
    assert job["status"] == "done" and job["result"]["members"][f"{SQUAD}/ikoma"]["ok"] == 3, job

    squad = {g["slug"]: g for g in api.get("/admin/groups").json()}[SQUAD]
    assert squad["index_version"] == job["result"]["index_versions"][SQUAD]["version_id"]
    assert squad["photos"] == {"ok": 7}
    result = post_image(api, probe("hori_miona"), group=SQUAD).json()
    assert result["faces"][0]["matches"][0]["slug"] == "hori", result

    listed = api.get("/admin/jobs", params={"kind": "upload"}).json()
    assert [j["id"] for j in listed[:2]] == [zipped.json()["job_id"], response.json()["job_id"]]
    assert all(j["kind"] == "upload" for j in listed)
    assert api.get("/admin/jobs", params={"status": "done", "limit": 1}).json()[0]["status"] == "done"


def test_group_members_and_index_versions(api: httpx.Client) -> None:
    """What the console shows: each member's photo counts, and every index version with its calibration."""
    members = api.get(f"/admin/groups/{DEMO_GROUP}/members").json()
    assert sorted(m["slug"] for m in members) == MEMBERS
    assert all(m["photos"] == {"ok": 5} and m["group"] == DEMO_GROUP and m["active"] for m in members), members

    # The squad group was published twice by the uploads above.
    versions = api.get(f"/admin/groups/{SQUAD}/versions").json()
    assert len(versions) >= 2 and [v["id"] for v in versions] == sorted((v["id"] for v in versions), reverse=True)
    newest = versions[0]
    assert newest["active"] and not any(v["active"] for v in versions[1:])
    assert newest["n_members"] == 2 and newest["n_faces"] == 7 and newest["model_pack"] == "buffalo_s"
    calibration = newest["calibration"]
    assert calibration["threshold"] == newest["threshold"]
    histogram = calibration["histogram"]
    assert len(histogram["edges"]) == len(histogram["genuine"]) + 1 == len(histogram["impostor"]) + 1
    # Every leave-one-out score lands in a bin: one genuine score per photo, one impostor score per photo.
    assert sum(histogram["genuine"]) == calibration["n_genuine"] == 7
    assert sum(histogram["impostor"]) == calibration["n_impostor"] >= 7
    assert api.get(f"/admin/groups/{SQUAD}/versions", params={"limit": 1}).json() == versions[:1]
    assert_error(api.get("/admin/groups/nobody/members"), 404, "unknown_group")
    assert_error(api.get("/admin/groups/nobody/versions"), 404, "unknown_group")


def test_upload_refusals(api: httpx.Client) -> None:
    hori = member_id(api, SQUAD, "hori")
    url = f"/admin/members/{hori}/photos"
    assert_error(api.post(url, files={"files": ("notes.txt", b"hello, no picture", "text/plain")}), 415, "not_an_image")
    gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,"
    assert_error(api.post(url, files={"files": ("a.gif", gif, "image/gif")}), 415, "unsupported_image_type")
    assert_error(api.post(url, files={"files": ("empty.jpg", b"", "image/jpeg")}), 415, "not_an_image")
    mixed = [("files", ("a.zip", b"PK\x03\x04rest", "application/zip")), ("files", ("b.jpg", demo("hori_miona", 2)))]
    assert_error(api.post(url, files=mixed), 422, "invalid_parameter")
    big = [("files", (f"{n}.jpg", b"\xff\xd8\xff" + b"\0" * (MAX_UPLOAD // 3), "image/jpeg")) for n in range(4)]
    assert_error(api.post(url, files=big), 413, "upload_too_large")
    assert_error(api.post(url), 422, "invalid_parameter")
    assert_error(
        api.post("/admin/members/999999/photos", files={"files": ("a.jpg", demo("hori_miona", 2))}), 404, "not_found"
    )


def test_jobs_queries(api: httpx.Client) -> None:
    assert_error(api.get("/admin/jobs", params={"kind": "bake"}), 422, "invalid_parameter")
    assert_error(api.get("/admin/jobs", params={"status": "lost"}), 422, "invalid_parameter")
    assert_error(api.get("/admin/jobs", params={"limit": 0}), 422, "invalid_parameter")
    assert_error(api.get("/admin/jobs/no-such-job"), 404, "not_found")


def test_scrape_scope_and_one_live_scrape_per_scope(api: httpx.Client, gateway: Gateway) -> None:
    for body in ({}, {"group": SQUAD, "all": True}, {"member_id": 1, "group": SQUAD}, {"all": False}):
        assert_error(api.post("/admin/scrape", json=body), 422, "invalid_parameter")
    assert_error(api.post("/admin/scrape", json={"group": "nobody"}), 404, "unknown_group")
    assert_error(api.post("/admin/scrape", json={"member_id": 999999}), 404, "not_found")

    # A scrape of the group is live (as if a worker were on it): a second one is refused, another scope is not.
    with db(gateway) as conn:
        conn.execute(
            "INSERT INTO jobs (id, kind, lock_key, status, attempts, params, created_at) "
            "VALUES ('live-scrape', 'scrape', 'scrape:group:squad', 'running', 1, '{}', CURRENT_TIMESTAMP)"
        )
    try:
        assert_error(api.post("/admin/scrape", json={"group": SQUAD}), 409, "job_conflict")
        hori = member_id(api, SQUAD, "hori")
        other = api.post("/admin/scrape", json={"member_id": hori})
        assert other.status_code == 202, other.text
        job = wait_job(api, other.json()["job_id"])
        # No source: nothing fetched, the group published again all the same.
        assert job["status"] == "done" and job["result"]["totals"]["candidates"] == 0, job
        assert job["params"] == {"member_id": hori}
    finally:
        with db(gateway) as conn:
            conn.execute("UPDATE jobs SET status = 'failed' WHERE id = 'live-scrape'")
    done = api.post("/admin/scrape", json={"group": SQUAD})
    assert done.status_code == 202 and wait_job(api, done.json()["job_id"])["status"] == "done"


# --------------------------------------------------------------------------- review


def upload_one(api: httpx.Client, member: int, data: bytes) -> dict[str, Any]:
    response = api.post(f"/admin/members/{member}/photos", files={"files": ("photo.jpg", data, "image/jpeg")})
    assert response.status_code == 202, response.text
    job = wait_job(api, response.json()["job_id"])
    assert job["status"] == "done", job
    return job


def test_review_queue_approve_and_reject(api: httpx.Client, anonymous: httpx.Client) -> None:
    # A member with a single photo: too few to know who the member is, so curation asks a human.
    nibu = api.post(f"/admin/groups/{SQUAD}/members", json={"slug": "nibu", "name": "Akari Nibu"}).json()["id"]
    job = upload_one(api, nibu, demo("nibu_akari", 1))
    assert job["result"]["members"][f"{SQUAD}/nibu"]["flagged"] == 1, job
    upload_one(api, nibu, demo("nibu_akari", 2))
    queue = api.get("/admin/review", params={"group": SQUAD}).json()
    flagged = [item for item in queue if item["member"] == "nibu"]
    assert len(flagged) == 2, queue
    first, second = flagged
    assert first["reason"] == "too_few_photos" and first["group"] == SQUAD and first["member_name"] == "Akari Nibu"
    assert len(first["faces"]) == 1 and first["box"] == first["faces"][0]["box"]
    image = api.get(first["url"])
    assert image.status_code == 200 and image.content == demo("nibu_akari", 1)
    assert image.headers["cache-control"] == "private, no-store"
    # Not public while flagged.
    assert anonymous.get(f"/members/{nibu}/photos/{first['photo_id']}").status_code == 404
    assert anonymous.get(first["url"]).status_code == 401

    approved = api.post(f"/admin/photos/{first['photo_id']}/approve")
    assert approved.status_code == 200, approved.text
    outcome = approved.json()
    assert outcome["status"] == "approved" and outcome["face_id"] == first["faces"][0]["id"]
    assert outcome["reindex"] in ("queued", "already_queued") and outcome["reindex_job_id"]
    rejected = api.post(f"/admin/photos/{second['photo_id']}/reject").json()
    assert rejected["status"] == "excluded" and rejected["reindex"] in ("queued", "already_queued")
    assert wait_job(api, rejected["reindex_job_id"])["status"] == "done"
    assert api.get(f"/admin/photos/{second['photo_id']}/image").status_code == 200  # any status, for admins
    assert anonymous.get(f"/members/{nibu}/photos/{first['photo_id']}").status_code == 200

    result = post_image(api, probe("nibu_akari"), group=SQUAD).json()
    assert result["faces"][0]["matches"][0]["slug"] == "nibu", result
    assert not [item for item in api.get("/admin/review", params={"group": SQUAD}).json() if item["member"] == "nibu"]
    assert_error(api.post("/admin/photos/999999/approve"), 404, "not_found")
    assert_error(api.post("/admin/photos/999999/reject"), 404, "not_found")


def test_approving_a_group_photo_needs_the_members_face(api: httpx.Client, gateway: Gateway) -> None:
    shiraishi = api.post(f"/admin/groups/{SQUAD}/members", json={"slug": "mai", "name": "Mai"}).json()["id"]
    upload_one(api, shiraishi, (FACES / "group" / "02.jpg").read_bytes())
    [item] = [i for i in api.get("/admin/review", params={"group": SQUAD}).json() if i["member"] == "mai"]
    assert len(item["faces"]) > 1 and item["box"] is None  # curation could not tell: every face kept
    url = f"/admin/photos/{item['photo_id']}/approve"
    assert_error(api.post(url), 422, "invalid_parameter")
    assert_error(api.post(url, json={"face_id": 999999}), 422, "invalid_parameter")
    chosen = item["faces"][1]["id"]
    outcome = api.post(url, json={"face_id": chosen}).json()
    assert outcome["status"] == "approved" and outcome["face_id"] == chosen
    assert wait_job(api, outcome["reindex_job_id"])["status"] == "done"
    with db(gateway) as conn:
        assert conn.execute("SELECT id FROM faces WHERE photo_id = ?", (item["photo_id"],)).fetchall() == [(chosen,)]


def test_a_queued_reindex_is_shared_by_later_decisions(api: httpx.Client, gateway: Gateway) -> None:
    """While a re-index of the group waits in the queue, a decision does not queue another: it is already_queued
    (the waiting one reads the gallery after the decision)."""
    hori = member_id(api, SQUAD, "hori")
    with db(gateway) as conn:
        [(target,)] = conn.execute("SELECT max(id) FROM photos WHERE member_id = ?", (hori,)).fetchall()
        conn.execute(
            "INSERT INTO jobs (id, kind, lock_key, status, attempts, params, created_at) "
            "VALUES ('waiting-reindex', 'reindex', 'reindex:squad', 'queued', 0, '{}', CURRENT_TIMESTAMP)"
        )
    try:
        outcome = api.post(f"/admin/photos/{target}/reject").json()
        assert outcome["status"] == "excluded"
        assert outcome["reindex"] == "already_queued" and outcome["reindex_job_id"] == "waiting-reindex", outcome
    finally:
        with db(gateway) as conn:
            conn.execute("UPDATE jobs SET status = 'done' WHERE id = 'waiting-reindex'")


# --------------------------------------------------------------------------- deletion


def test_deleted_member_is_gone_from_the_next_diagnosis(api: httpx.Client, gateway: Gateway) -> None:
    photo = probe("saito_asuka")
    before = post_image(api, photo, group=DEMO_GROUP).json()
    assert before["faces"][0]["matches"][0]["slug"] == "saito_asuka"
    saito = member_id(api, DEMO_GROUP, "saito_asuka")
    old_version = before["index_versions"][DEMO_GROUP]
    with db(gateway) as conn:
        paths = [p for (p,) in conn.execute("SELECT path FROM photos WHERE member_id = ?", (saito,))]
        blobs = conn.execute(
            "SELECT f.embedding FROM faces f JOIN photos p ON p.id = f.photo_id WHERE p.member_id = ?", (saito,)
        ).fetchall()
    assert len(paths) == 5 and all((gateway.data_dir / "photos" / p).is_file() for p in paths)
    fragments = embedding_needles(np.frombuffer(b, dtype=np.float32) for (b,) in blobs)
    assert len(blobs) == 5 and scan_files([gateway.data_dir], [], b"-", fragments).leaks  # there before

    deleted = api.delete(f"/admin/members/{saito}")
    assert deleted.status_code == 200, deleted.text
    body = deleted.json()
    assert body["deleted"] == {
        "members": 1, "photos": 5, "faces": 5, "sources": 0, "files": 5, "index_versions": 1
    }, body  # fmt: skip
    assert body["index_version"] is not None and body["index_version"] != old_version

    # At once: no waiting, no retry.
    after = post_image(api, photo, group=DEMO_GROUP).json()
    assert after["index_versions"][DEMO_GROUP] == body["index_version"]
    assert "saito_asuka" not in names_in(after), after
    everywhere = post_image(api, photo).json()
    assert "saito_asuka" not in names_in(everywhere)
    assert not any((gateway.data_dir / "photos" / p).exists() for p in paths)
    assert not (gateway.data_dir / "index" / DEMO_GROUP / str(old_version)).exists()
    with db(gateway) as conn:
        assert conn.execute("SELECT count(*) FROM photos WHERE member_id = ?", (saito,)).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM members WHERE id = ?", (saito,)).fetchone() == (0,)
        versions = conn.execute("SELECT members FROM index_versions").fetchall()
    assert all(saito not in {m["id"] for m in json.loads(members)} for (members,) in versions)
    # Nor anywhere on disk: the database file, its write-ahead log, index versions, photo folders.
    leaks = scan_files([gateway.data_dir], [], b"-", fragments)
    assert leaks.scanned > 0 and leaks.leaks == [], leaks.leaks
    assert_error(api.delete(f"/admin/members/{saito}"), 404, "not_found")
    assert_error(httpx.get(f"{api.base_url}/members/{saito}"), 404, "not_found")
    others = [m["slug"] for m in api.get("/members", params={"group": DEMO_GROUP}).json()]
    assert sorted(others) == sorted(set(MEMBERS) - {"saito_asuka"})


def test_deleting_the_last_member_takes_the_group_offline(api: httpx.Client) -> None:
    squad = [m for m in api.get("/members", params={"group": SQUAD}).json()]
    assert squad
    for i, member in enumerate(squad):
        body = api.delete(f"/admin/members/{member['id']}").json()
        if i < len(squad) - 1:
            assert body["deleted"]["members"] == 1
        else:
            assert body["index_version"] is None and body["reindex_error"] is None, body
    assert_error(post_image(api, probe("hori_miona"), group=SQUAD), 409, "no_index")
    assert {g["slug"]: g for g in api.get("/admin/groups").json()}[SQUAD]["index_version"] is None


def test_delete_group(api: httpx.Client, gateway: Gateway) -> None:
    api.post("/admin/groups", json={"slug": "doomed", "name": "Doomed"}).raise_for_status()
    member = api.post("/admin/groups/doomed/members", json={"slug": "rina", "name": "Rina"}).json()["id"]
    api.post(f"/admin/members/{member}/sources", json={"kind": "image_url", "value": "https://x.example/a.jpg"})
    files = [("files", (f"{n}.jpg", demo("ikoma_rina", n), "image/jpeg")) for n in (1, 2, 3)]
    job = wait_job(api, api.post(f"/admin/members/{member}/photos", files=files).json()["job_id"])
    assert job["status"] == "done" and job["result"]["index_versions"]["doomed"]["version_id"], job
    deleted = api.delete("/admin/groups/doomed").json()
    assert deleted == {
        "deleted": {"members": 1, "photos": 3, "faces": 3, "sources": 1, "files": 3, "index_versions": 1}
    }  # fmt: skip
    assert not (gateway.data_dir / "photos" / "doomed").exists()
    assert not (
        gateway.data_dir / "index" / "doomed" / str(job["result"]["index_versions"]["doomed"]["version_id"])
    ).exists()
    assert_error(post_image(api, probe("ikoma_rina"), group="doomed"), 404, "unknown_group")
    assert_error(api.delete("/admin/groups/doomed"), 404, "unknown_group")
    # The demo group still answers.
    assert (
        post_image(api, probe("ikoma_rina"), group=DEMO_GROUP).json()["faces"][0]["matches"][0]["slug"] == "ikoma_rina"
    )


def test_a_photo_approved_under_the_wrong_member_is_reported(api: httpx.Client) -> None:
    """Curation flags a new member's first photo that is clearly another member; a reviewer approves it anyway
    (a member filed again under a new name). The re-index reports the pair in its job result and in the versions
    view (with both photos), keeps the reviewer's decision, and calibrates without it."""
    twice = "twice"
    assert api.post("/admin/groups", json={"slug": twice, "name": "Twice filed"}).status_code == 201
    ids = {
        slug: api.post(f"/admin/groups/{twice}/members", json={"slug": slug, "name": name}).json()["id"]
        for slug, name in (("asuka", "Asuka Saito"), ("mai", "Mai Shiraishi"), ("asuka_again", "Asuka (new name)"))
    }
    for slug, photos in (
        ("asuka", [demo("saito_asuka", n) for n in (1, 2, 3)]),
        ("mai", [demo("shiraishi_mai", n) for n in (1, 2, 3)]),
    ):
        files = [("files", (f"{slug}-{n}.jpg", data, "image/jpeg")) for n, data in enumerate(photos)]
        assert (
            wait_job(api, api.post(f"/admin/members/{ids[slug]}/photos", files=files).json()["job_id"])["status"]
            == "done"
        )
    job = upload_one(api, ids["asuka_again"], probe("saito_asuka", 12))
    assert job["result"]["members"][f"{twice}/asuka_again"]["flagged"] == 1, job
    [item] = [i for i in api.get("/admin/review", params={"group": twice}).json() if i["member"] == "asuka_again"]
    assert item["reason"] == "other_member:asuka"
    before = api.get(f"/admin/groups/{twice}/versions").json()[0]
    assert before["suspect_pairs"] == []

    outcome = api.post(f"/admin/photos/{item['photo_id']}/approve").json()
    reindexed = wait_job(api, outcome["reindex_job_id"])
    assert reindexed["status"] == "done", reindexed
    pairs = reindexed["result"]["suspect_pairs"]
    [pair] = pairs
    assert (pair["photo_id"], pair["member"], pair["other_member"]) == (item["photo_id"], "asuka_again", "asuka")
    assert pair["status"] == "approved" and pair["similarity"] > reindexed["result"]["threshold"] - 0.1

    [newest, *_] = api.get(f"/admin/groups/{twice}/versions").json()
    [shown] = newest["suspect_pairs"]
    assert shown == {**pair, "photo_url": ANY, "other_photo_url": ANY}
    for url, photo in ((shown["photo_url"], pair["photo_id"]), (shown["other_photo_url"], pair["other_photo_id"])):
        assert url == f"/admin/photos/{photo}/image" and api.get(url).status_code == 200
    assert newest["n_impostor"] == newest["calibration"]["n_impostor"] == 6  # the approved photo is not one of them
    assert newest["n_faces"] == 7  # a reviewer's decision stands: it is served
    low, high = newest["threshold_interval"]
    assert low <= newest["threshold"] <= high
    assert newest["lookalike_threshold"] is not None and newest["lookalike_threshold"] < newest["threshold"]
    assert api.delete(f"/admin/groups/{twice}").status_code == 200
