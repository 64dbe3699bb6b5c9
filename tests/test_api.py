"""The gateway over real HTTP: uvicorn in a subprocess on a copy of the demo gallery, driven with httpx.

Nothing is mocked: the server loads the real buffalo_s models, reads the real SQLite file and index files of a
copy of the session's demo data dir, and every request crosses a real socket.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from lookalike.pipeline.pipeline import Pipeline
from tests.conftest import make_settings

REPO = Path(__file__).resolve().parents[1]
FACES = REPO / "tests" / "data" / "faces"
DEMO_GROUP = "sakamichi"
MEMBERS = ["hori_miona", "ikoma_rina", "nibu_akari", "saito_asuka", "shiraishi_mai"]
STRANGERS = sorted(p.name for p in (FACES / "strangers").iterdir() if p.is_dir())
# Small caps keep the oversize cases cheap; the demo photos are far below both.
MAX_UPLOAD = 2_000_000
MAX_PIXELS = 30_000_000
START_TIMEOUT_S = 120.0
ERROR_CODES_5XX_FREE = range(400, 500)


# --------------------------------------------------------------------------- the server


@dataclass(frozen=True)
class Gateway:
    base_url: str
    data_dir: Path
    log: Path
    process: subprocess.Popen[bytes]

    def client(self, timeout: float = 60.0) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=timeout)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    # Only what the test sets: no LOOKALIKE_* from the caller's shell leaks into the server. The per-client
    # limits are off: every request comes from 127.0.0.1, faster than a person (tests/hardening tests them).
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")}
    env.update(
        {
            "LOOKALIKE_DATA_DIR": str(data_dir),
            "LOOKALIKE_WORKERS": "2",
            "LOOKALIKE_DIAGNOSE_RATE_LIMIT": "0",
            "LOOKALIKE_DIAGNOSE_CLIENT_CONCURRENCY": "0",
            **extra,
        }
    )
    return env


@contextmanager
def run_gateway(
    data_dir: Path, workdir: Path, *, expect_ready: bool = True, cli: bool = False, **env: str
) -> Iterator[Gateway]:
    """Start `uvicorn services.gateway.app:create_app --factory` (`cli`: `lookalike serve`, which also sets
    uvicorn's proxy-header trust), wait for /readyz, stop it afterwards.

    The working directory is a scratch folder so that no `.env` file of the checkout changes the settings.
    """
    port = _free_port()
    log = workdir / f"gateway-{port}.log"
    if cli:
        command = [str(Path(sys.executable).with_name("lookalike")), "serve"]
    else:
        command = [sys.executable, "-m", "uvicorn", "services.gateway.app:create_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=workdir, env=_server_env(data_dir, **env), stdout=out, stderr=subprocess.STDOUT
        )
    gateway = Gateway(f"http://127.0.0.1:{port}", data_dir, log, process)
    try:
        _wait_until_up(gateway, expect_ready=expect_ready)
        yield gateway
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_until_up(gateway: Gateway, *, expect_ready: bool) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:
        if gateway.process.poll() is not None:
            pytest.fail(f"the gateway exited with {gateway.process.returncode}:\n{gateway.log.read_text()[-4000:]}")
        try:
            response = httpx.get(gateway.base_url + "/readyz", timeout=5)
        except httpx.TransportError as exc:
            last = repr(exc)
        else:
            last = f"{response.status_code} {response.text}"
            # Uvicorn accepts connections only once the lifespan (migrations, model warm-up) has finished.
            if response.status_code == 200 or (not expect_ready and response.status_code == 503):
                return
        time.sleep(0.2)
    pytest.fail(f"the gateway did not come up in {START_TIMEOUT_S:.0f}s (last: {last}):\n{gateway.log.read_text()}")


@pytest.fixture(scope="module")
def gateway(demo_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    work = tmp_path_factory.mktemp("gateway")
    data_dir = work / "data"
    shutil.copytree(demo_data_dir, data_dir)
    with run_gateway(
        data_dir, work, LOOKALIKE_MAX_UPLOAD_BYTES=str(MAX_UPLOAD), LOOKALIKE_MAX_PIXELS=str(MAX_PIXELS)
    ) as running:
        yield running


@pytest.fixture(scope="module")
def client(gateway: Gateway) -> Iterator[httpx.Client]:
    with gateway.client() as c:
        yield c


# --------------------------------------------------------------------------- helpers


def post_image(client: httpx.Client, data: bytes, *, filename: str = "photo.jpg", **form: str) -> httpx.Response:
    return client.post("/diagnose", files={"image": (filename, data, "image/jpeg")}, data=form or None)


def read(path: str) -> bytes:
    return (FACES / path).read_bytes()


def post_photos(client: httpx.Client, photos: list[bytes], **form: str) -> httpx.Response:
    """Several `image` parts in one request: photos of one person."""
    files = [("image", (f"photo{n}.jpg", data, "image/jpeg")) for n, data in enumerate(photos, 1)]
    return client.post("/diagnose", files=files, data=form or None)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Every error is JSON {"error": {"code", "message"}} with a stable code, and never a 5xx."""
    assert response.status_code in ERROR_CODES_5XX_FREE, response.text
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    # "photo": several photos were sent and the error is about one of them.
    assert {"code", "message"} <= set(body["error"]) <= {"code", "message", "photo"}
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


def check_result(body: dict[str, Any], image: bytes) -> None:
    """The DiagnoseResult schema, with values that make sense for this photo and the demo gallery."""
    width, height = Image.open(io.BytesIO(image)).size
    assert body["image"] == {"width": width, "height": height, "format": "jpeg"}
    assert body["model_pack"] == "buffalo_s"
    assert set(body["index_versions"]) == {DEMO_GROUP}
    assert isinstance(body["index_versions"][DEMO_GROUP], int)
    timings = body["timings_ms"]
    assert {"decode", "detect", "align", "embed", "match", "total"} <= set(timings)
    assert all(isinstance(v, float | int) and v >= 0 for v in timings.values())
    assert timings["total"] > 0
    assert body["faces"]
    for face in body["faces"]:
        x1, y1, x2, y2 = face["box"]
        assert -1 <= x1 < x2 <= width + 1 and -1 <= y1 < y2 <= height + 1, face["box"]
        assert 0 < face["det_score"] <= 1
        assert len(face["landmarks"]) == 5 and all(len(p) == 2 for p in face["landmarks"])
        assert all(isinstance(v, float) for p in face["landmarks"] for v in p)
        assert face["verdict"] in ("same_person", "lookalike", "no_match")
        assert "same_person_likely" not in face and "threshold" not in face
        assert isinstance(face["warnings"], list)
        matches = face["matches"]
        assert 1 <= len(matches) <= 3
        scores = [m["score"] for m in matches]
        assert scores == sorted(scores, reverse=True)
        assert len({m["member_id"] for m in matches}) == len(matches)
        for m in matches:
            assert isinstance(m["member_id"], int) and isinstance(m["closest_photo_id"], int)
            assert m["slug"] in MEMBERS
            assert isinstance(m["name"], str) and m["name"]
            assert m["group"] == DEMO_GROUP
            assert -1.0 <= m["similarity"] <= 1.0
            assert m["lookalike_score"] <= m["score"] + 1.0
            assert 0.0 <= m["resemblance"] <= 100.0
            assert m["photo_url"] == f"/members/{m['member_id']}/photos/{m['closest_photo_id']}"
        thresholds = face["thresholds"]
        assert 0 < thresholds["same_person"] < 1 and thresholds["lookalike"] < thresholds["same_person"]
        # same_person on the similarity; lookalike on the lookalike score, where resemblance crosses 50 %.
        best = matches[0]
        if face["verdict"] == "same_person":
            assert best["similarity"] >= thresholds["same_person"]
        elif face["verdict"] == "lookalike":
            assert best["similarity"] < thresholds["same_person"]
            assert best["lookalike_score"] >= thresholds["lookalike"] and best["resemblance"] >= 50
        else:
            assert best["similarity"] < thresholds["same_person"]
            assert best["lookalike_score"] < thresholds["lookalike"] and best["resemblance"] < 50


def tiled(path: str, n: int) -> bytes:
    """An n x n mosaic of one photo, as JPEG: many small faces, a slower diagnosis."""
    img = Image.open(FACES / path).convert("RGB")
    w, h = img.size
    canvas = Image.new("RGB", (w * n, h * n))
    for i in range(n):
        for j in range(n):
            canvas.paste(img, (i * w, j * h))
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with one tiny IDAT: costs bytes, not pixels."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


# --------------------------------------------------------------------------- diagnose: results


@pytest.mark.parametrize("member", MEMBERS)
def test_member_probe_matches_that_member_first(client: httpx.Client, member: str) -> None:
    image = read(f"probes/{member}/11.jpg")
    response = post_image(client, image)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    check_result(body, image)
    assert len(body["faces"]) == 1
    face = body["faces"][0]
    assert face["verdict"] == "same_person"
    assert face["matches"][0]["slug"] == member
    assert face["margin"] is not None and face["margin"] > 0


def test_match_links_to_a_real_photo_of_the_member(client: httpx.Client) -> None:
    best = post_image(client, read("probes/saito_asuka/11.jpg")).json()["faces"][0]["matches"][0]
    detail = client.get(f"/members/{best['member_id']}")
    assert detail.status_code == 200
    assert detail.json()["slug"] == "saito_asuka"
    assert best["closest_photo_id"] in [p["id"] for p in detail.json()["photos"]]
    photo = client.get(best["photo_url"])
    assert photo.status_code == 200
    assert photo.headers["content-type"] == "image/jpeg"
    assert photo.content.startswith(b"\xff\xd8\xff")


def test_group_filter_restricts_to_that_group(client: httpx.Client) -> None:
    image = read("probes/ikoma_rina/12.jpg")
    response = post_image(client, image, group=DEMO_GROUP)
    assert response.status_code == 200, response.text
    body = response.json()
    check_result(body, image)
    assert body["faces"][0]["matches"][0]["slug"] == "ikoma_rina"


@pytest.mark.parametrize("stranger", STRANGERS)
def test_stranger_resembles_nobody(client: httpx.Client, stranger: str) -> None:
    path = sorted((FACES / "strangers" / stranger).glob("*.jpg"))[0]
    image = path.read_bytes()
    response = post_image(client, image)
    assert response.status_code == 200, response.text
    body = response.json()
    check_result(body, image)
    # Never the member themself; a lookalike only for the Korean idol who resembles Miona Hori (measured: 57 %).
    expected = "lookalike" if stranger == "lia_itzy" else "no_match"
    assert [f["verdict"] for f in body["faces"]] == [expected] * len(body["faces"])
    # The nearest members are reported either way.
    assert all(f["matches"] for f in body["faces"])


# --------------------------------------------------------------------------- diagnose: several photos of one person

SAITO = ["probes/saito_asuka/11.jpg", "probes/saito_asuka/12.jpg", "../../../demo/gallery/saito_asuka/05.jpg"]


def test_photos_of_one_person_give_one_answer_about_the_person(
    client: httpx.Client, pipeline: Pipeline, demo_data_dir: Path
) -> None:
    """Three photos of one person: one face, the main face's box in each photo, and the same answer as the
    evaluation's combined-photo path (Pipeline.person_query) on the same three photos."""
    photos = [read(p) for p in SAITO]
    response = post_photos(client, photos)
    assert response.status_code == 200, response.text
    body = response.json()
    [face] = body["faces"]
    assert face["verdict"] == "same_person" and face["matches"][0]["slug"] == "saito_asuka"
    assert len(face["boxes"]) == 3 and face["boxes"][0] == face["box"]
    sizes = [Image.open(io.BytesIO(p)).size for p in photos]
    assert [(i["width"], i["height"]) for i in body["images"]] == sizes
    assert body["image"] == body["images"][0]
    for (w, h), (x1, y1, x2, y2) in zip(sizes, face["boxes"], strict=True):
        assert 0 <= x1 < x2 <= w + 1 and 0 <= y1 < y2 <= h + 1
    # The same three photos through the evaluation's path, against the gallery the gateway serves.
    from lookalike.index.registry import IndexRegistry

    galleries = IndexRegistry(make_settings(demo_data_dir), pipeline.pack_name).galleries()
    _, mains = pipeline.read_person(photos)
    query = pipeline.person_query(np.stack([m.embedding for m in mains]))
    [expected] = pipeline.rank(query[None, :], galleries)
    assert [m["slug"] for m in face["matches"]] == [m.member.slug for m in expected]
    assert [m["similarity"] for m in face["matches"]] == pytest.approx([m.similarity for m in expected], abs=2e-4)
    assert face["verdict"] == galleries[0].calibration.verdict(expected[0].similarity, expected[0].lookalike)


def test_a_photo_of_someone_else_is_named(client: httpx.Client) -> None:
    photos = [read(SAITO[0]), read("strangers/bill_gates/04.jpg"), read(SAITO[1])]
    error = assert_error(post_photos(client, photos), 422, "different_people")
    assert error["photo"] == 2 and "photo 2 of 3" in error["message"]


def test_a_photo_without_a_face_is_named(client: httpx.Client) -> None:
    photos = [read(SAITO[0]), read(SAITO[1]), read("noface/04.jpg")]
    error = assert_error(post_photos(client, photos), 422, "no_face")
    assert error["photo"] == 3 and "photo 3 of 3" in error["message"]
    broken = read(SAITO[1])[:2000]
    error = assert_error(post_photos(client, [read(SAITO[0]), broken]), 422, "corrupt_image")
    assert error["photo"] == 2


@pytest.mark.parametrize("count", [6, 11])
def test_too_many_photos_are_refused(client: httpx.Client, count: int) -> None:
    """Over LOOKALIKE_MAX_PHOTOS (5), and over what the form parser takes at all (10): the same clear answer."""
    small = read("probes/nibu_akari/12.jpg")
    error = assert_error(post_photos(client, [small] * count), 413, "too_many_photos")
    assert "too many photos" in error["message"] or f"{count} photos" in error["message"]


def test_the_upload_limit_counts_all_photos_together(client: httpx.Client) -> None:
    """Each photo is under LOOKALIKE_MAX_UPLOAD_BYTES, together they are over it."""
    photo = read("probes/saito_asuka/11.jpg")
    padded = photo + b"\0" * (MAX_UPLOAD // 3 + 10_000 - len(photo))  # refused before any byte is decoded
    assert_error(post_photos(client, [padded] * 3), 413, "upload_too_large")
    assert post_photos(client, [photo] * 3).status_code == 200


def test_group_photo_reports_every_face(client: httpx.Client) -> None:
    image = read("group/02.jpg")  # Big Bang Theory cast: five faces, none of them a demo member
    response = post_image(client, image)
    assert response.status_code == 200, response.text
    body = response.json()
    check_result(body, image)
    faces = body["faces"]
    assert len(faces) == 5
    assert all(f["verdict"] == "no_match" for f in faces)
    centres = {(round((f["box"][0] + f["box"][2]) / 2), round((f["box"][1] + f["box"][3]) / 2)) for f in faces}
    assert len(centres) == 5  # five different places, not one face reported five times


# --------------------------------------------------------------------------- diagnose: refusals


@pytest.mark.parametrize("name", ["04.jpg", "08.jpg"])
def test_photo_without_a_face(client: httpx.Client, name: str) -> None:
    assert_error(post_image(client, read(f"noface/{name}")), 422, "no_face")


def test_text_is_not_an_image(client: httpx.Client) -> None:
    # The declared name and type say JPEG; only the bytes count.
    data = b"this is plain text, not a picture\n" * 20
    assert_error(post_image(client, data, filename="photo.jpg"), 415, "not_an_image")


def test_what_is_no_picture_is_refused_before_a_job_is_made(client: httpx.Client, gateway: Gateway) -> None:
    """Async too: a 415 at once, not a 202 for a job that can only fail (schemathesis found the 202); several photos
    name the one at fault, as the worker does."""
    db = gateway.data_dir / "lookalike.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        jobs_before = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
    text = b"[1, 2]"
    response = client.post("/diagnose", files={"image": ("image", text)}, params={"async": "true"})
    assert_error(response, 415, "not_an_image")
    gif = io.BytesIO()
    Image.new("RGB", (64, 64)).save(gif, "GIF")
    photos = [("image", ("a.jpg", read("probes/hori_miona/12.jpg"))), ("image", ("b.gif", gif.getvalue()))]
    error = assert_error(
        client.post("/diagnose", files=photos, params={"async": "true"}), 415, "unsupported_image_type"
    )
    assert error["photo"] == 2 and error["message"].startswith("photo 2 of 2: GIF"), error
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone()[0] == jobs_before


def test_empty_upload_is_not_an_image(client: httpx.Client) -> None:
    assert_error(post_image(client, b""), 415, "not_an_image")


def test_gif_is_unsupported(client: httpx.Client) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 120, 90)).save(buf, "GIF")
    assert_error(post_image(client, buf.getvalue(), filename="a.gif"), 415, "unsupported_image_type")


@pytest.mark.parametrize("keep", [200, 0.5])
def test_truncated_jpeg(client: httpx.Client, keep: float) -> None:
    whole = read("probes/hori_miona/11.jpg")
    data = whole[: int(keep if keep > 1 else len(whole) * keep)]
    response = post_image(client, data)
    if response.status_code == 200:
        check_result(response.json(), whole)  # libjpeg may fill in the missing rows of a half file
    else:
        assert_error(response, 422, "corrupt_image")
    if keep == 200:  # a bare header has no picture to recover
        assert response.status_code == 422


def test_body_over_the_cap_with_content_length(client: httpx.Client) -> None:
    data = b"\xff\xd8\xff" + b"\0" * (MAX_UPLOAD + 200_000)
    assert_error(post_image(client, data), 413, "upload_too_large")


def requests_counted(client: httpx.Client, route: str, status: int) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    wanted = {"method": "POST", "route": route, "status": str(status)}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "lookalike_http_requests_total" and sample.labels == wanted:
                return sample.value
    return 0.0


def test_a_body_refused_before_routing_counts_under_its_route(client: httpx.Client) -> None:
    """The 413 from a declared length is answered before the router runs; /metrics still files it under
    /diagnose (it used to say route "unmatched"), and a path no route takes stays unmatched."""
    data = b"\xff\xd8\xff" + b"\0" * (MAX_UPLOAD + 200_000)
    before = requests_counted(client, "/diagnose", 413), requests_counted(client, "unmatched", 413)
    assert_error(post_image(client, data), 413, "upload_too_large")
    assert_error(client.post("/nowhere", content=data), 413, "upload_too_large")
    after = requests_counted(client, "/diagnose", 413), requests_counted(client, "unmatched", 413)
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)


def test_image_over_the_cap_inside_an_allowed_body(client: httpx.Client) -> None:
    # The body cap leaves room for multipart framing; the image itself is capped exactly.
    data = b"\xff\xd8\xff" + b"\0" * (MAX_UPLOAD + 10)
    assert_error(post_image(client, data), 413, "upload_too_large")


def test_chunked_body_over_the_cap(gateway: Gateway) -> None:
    """No Content-Length: the cap holds while the body streams in.

    The image itself is a small, valid probe; the body is large because of what follows the form. Only the cap on
    the whole streamed body can answer 413 here (the route's own check sees a small image and would diagnose it).
    """
    boundary = "lookalike-test-boundary"
    image = read("probes/hori_miona/11.jpg")

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode() + image
        # The padding is the multipart epilogue, after the closing boundary: no part of the form, so neither the
        # route's form limits nor its image cap see it; only the cap on the streamed body does.
        yield f"\r\n--{boundary}--\r\n".encode()
        for _ in range(3 * MAX_UPLOAD // 65536):
            yield b"x" * 65536

    request_headers: dict[str, str] = {}

    def remember(request: httpx.Request) -> None:
        request_headers.update(request.headers)

    with httpx.Client(base_url=gateway.base_url, timeout=60, event_hooks={"request": [remember]}) as c:
        response = c.post(
            "/diagnose", content=body(), headers={"content-type": f"multipart/form-data; boundary={boundary}"}
        )
    assert "content-length" not in {k.lower() for k in request_headers}
    assert request_headers.get("transfer-encoding") == "chunked"
    assert_error(response, 413, "upload_too_large")
    # The server is still fine afterwards.
    assert httpx.get(gateway.base_url + "/healthz", timeout=10).status_code == 200


def test_small_chunked_upload_is_diagnosed(client: httpx.Client) -> None:
    image = read("probes/ikoma_rina/11.jpg")
    boundary = "lookalike-test-boundary"

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        for i in range(0, len(image), 16384):
            yield image[i : i + 16384]
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(
        "/diagnose", content=body(), headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["faces"][0]["matches"][0]["slug"] == "ikoma_rina"


def test_pixel_cap_is_checked_from_the_header(client: httpx.Client) -> None:
    # 64 megapixels claimed by a ~100-byte file; decoding it would fail, so only a header check says this.
    data = png_header_only(8000, 8000)
    assert len(data) < 1000
    error = assert_error(post_image(client, data, filename="bomb.png"), 413, "image_too_large")
    assert "8000x8000" in error["message"]


def test_missing_image_field(client: httpx.Client) -> None:
    response = client.post("/diagnose", files={"photo": ("a.jpg", read("probes/hori_miona/11.jpg"), "image/jpeg")})
    error = assert_error(response, 422, "invalid_parameter")
    assert "image" in error["message"]


def test_no_body_at_all(client: httpx.Client) -> None:
    assert_error(client.post("/diagnose"), 422, "invalid_parameter")


@pytest.mark.parametrize("group", ["Sakamichi", "bad group!", "-x", "a" * 65])
def test_bad_group_pattern(client: httpx.Client, group: str) -> None:
    error = assert_error(post_image(client, read("probes/hori_miona/11.jpg"), group=group), 422, "invalid_parameter")
    assert "group" in error["message"]


def test_unknown_group(client: httpx.Client) -> None:
    assert_error(post_image(client, read("probes/hori_miona/11.jpg"), group="nosuchgroup"), 404, "unknown_group")


def test_mid_size_crowd_photo_is_not_a_server_error(client: httpx.Client) -> None:
    # Regression: the detector's large pass ran SCRFD at a side that is not a multiple of its stride (1188 here)
    # and crashed with a numpy broadcast error, a 500 for an ordinary photo.
    image = tiled("group/02.jpg", 2)  # 1188 x 766, twenty small faces
    response = post_image(client, image)
    assert response.status_code < 500, response.text
    assert response.status_code == 200
    assert len(response.json()["faces"]) >= 10


# --------------------------------------------------------------------------- gallery browsing


def test_groups(client: httpx.Client) -> None:
    response = client.get("/groups")
    assert response.status_code == 200
    groups = response.json()
    assert [g["slug"] for g in groups] == [DEMO_GROUP]
    group = groups[0]
    assert group["members"] == len(MEMBERS)
    assert group["name"].startswith("Sakamichi")
    assert isinstance(group["index_version"], int)
    assert 0 < group["threshold"] < 1
    assert group["lookalike_threshold"] < group["threshold"]
    served = post_image(client, read("probes/nibu_akari/11.jpg")).json()
    assert served["index_versions"] == {DEMO_GROUP: group["index_version"]}
    thresholds = served["faces"][0]["thresholds"]
    assert thresholds["same_person"] == pytest.approx(group["threshold"], abs=1e-3)
    assert thresholds["lookalike"] == pytest.approx(group["lookalike_threshold"], abs=1e-3)


def test_members(client: httpx.Client) -> None:
    response = client.get("/members")
    assert response.status_code == 200
    members = response.json()
    assert [m["slug"] for m in members] == MEMBERS
    by_slug = {m["slug"]: m for m in members}
    assert by_slug["hori_miona"]["name"] == "Miona Hori"
    assert by_slug["hori_miona"]["meta"].get("name_ja") == "堀未央奈"
    for m in members:
        assert m["group"] == DEMO_GROUP and m["active"] is True
        assert m["photo_count"] == 5
        assert m["cover_url"].startswith(f"/members/{m['id']}/photos/")
    assert client.get("/members", params={"group": DEMO_GROUP}).json() == members
    assert client.get("/members", params={"group": "nosuchgroup"}).json() == []
    assert_error(client.get("/members", params={"group": "NOT OK"}), 422, "invalid_parameter")


def test_member_detail_lists_photos_that_are_served(client: httpx.Client) -> None:
    member = client.get("/members").json()[0]
    response = client.get(f"/members/{member['id']}")
    assert response.status_code == 200
    detail = response.json()
    assert detail["slug"] == member["slug"]
    assert len(detail["photos"]) == member["photo_count"] == 5
    assert detail["cover_url"] == detail["photos"][0]["url"]
    for photo in detail["photos"]:
        assert photo["url"] == f"/members/{member['id']}/photos/{photo['id']}"
        served = client.get(photo["url"])
        assert served.status_code == 200
        assert served.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(served.content)).size == (photo["width"], photo["height"])


def test_photo_of_another_member_is_not_found(client: httpx.Client) -> None:
    first, second = client.get("/members").json()[:2]
    photo_id = client.get(f"/members/{first['id']}").json()["photos"][0]["id"]
    assert client.get(f"/members/{first['id']}/photos/{photo_id}").status_code == 200
    assert_error(client.get(f"/members/{second['id']}/photos/{photo_id}"), 404, "not_found")
    assert_error(client.get(f"/members/{first['id']}/photos/999999"), 404, "not_found")


def test_unknown_member(client: httpx.Client) -> None:
    assert_error(client.get("/members/999999"), 404, "not_found")
    assert_error(client.get("/members/not-a-number"), 422, "invalid_parameter")


# --------------------------------------------------------------------------- service endpoints


def test_healthz(client: httpx.Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz(client: httpx.Client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["ready"] is True
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["models"] == "ok"
    assert body["checks"]["index"].startswith("ok")


def test_openapi_lists_diagnose(client: httpx.Client) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert "post" in spec["paths"]["/diagnose"]
    assert {"/members", "/members/{member_id}", "/groups", "/healthz", "/readyz"} <= set(spec["paths"])
    documented = set(spec["paths"]["/diagnose"]["post"]["responses"])
    assert {"200", "404", "413", "415", "422"} <= documented


@pytest.mark.parametrize("path", ["/", "/admin"])
def test_pages_and_the_files_they_load(client: httpx.Client, path: str) -> None:
    """Each page and every script, stylesheet and module it names is served (the browser tests use them all)."""
    page = client.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets), assets
    modules = [a for a in assets if a.endswith(".js")]
    while modules:
        script = client.get(modules.pop())
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        # Modules import each other relatively: follow them so a missing one fails here, not only in a browser.
        for name in re.findall(r'from "\./([\w.-]+\.js)"', script.text):
            assets.append(f"/static/js/{name}")
            modules.append(f"/static/js/{name}")
    for asset in assets:
        assert client.get(asset).status_code == 200, asset


def test_about_states_the_privacy_figures(client: httpx.Client) -> None:
    about = client.get("/about").json()
    assert about["stores_uploads"] is False
    assert about["result_ttl_s"] == 3600 and about["max_upload_bytes"] == MAX_UPLOAD
    assert about["model_pack"] == "buffalo_s" and about["explain_max_faces"] >= 1
    assert about["max_photos"] == 5


def test_unknown_route_and_method(client: httpx.Client) -> None:
    assert_error(client.get("/no/such/route"), 404, "not_found")
    assert_error(client.get("/diagnose"), 405, "method_not_allowed")


# --------------------------------------------------------------------------- concurrency


def _stable(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "timings_ms"}


def test_explain_adds_a_heatmap_per_face(client: httpx.Client) -> None:
    plain = post_image(client, read("probes/ikoma_rina/11.jpg")).json()
    assert plain["faces"][0]["explanation"] is None
    response = client.post(
        "/diagnose", params={"explain": "true"}, files={"image": ("p.jpg", read("probes/ikoma_rina/11.jpg"))}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    face = body["faces"][0]
    explanation = face["explanation"]
    best = face["matches"][0]
    assert (explanation["member_id"], explanation["photo_id"]) == (best["member_id"], best["closest_photo_id"])
    assert abs(explanation["similarity"] - best["similarity"]) < 1e-3
    assert len(explanation["grid"]) == len(explanation["grid"][0]) == explanation["size"] // explanation["cell"]
    assert len(explanation["transform"]) == 2 and all(len(row) == 3 for row in explanation["transform"])
    assert body["timings_ms"]["explain"] > 0
    assert_error(client.post("/diagnose?explain=maybe", files={"image": ("p.jpg", b"x")}), 422, "invalid_parameter")


def test_parallel_diagnoses_agree(gateway: Gateway) -> None:
    image = read("probes/shiraishi_mai/12.jpg")

    def one(_: int) -> tuple[int, dict[str, Any]]:
        with gateway.client() as c:
            response = post_image(c, image)
            return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(8)))
    assert [status for status, _ in results] == [200] * 8, results
    first = _stable(results[0][1])
    assert first["faces"][0]["matches"][0]["slug"] == "shiraishi_mai"
    assert all(_stable(body) == first for _, body in results)


def test_event_loop_answers_while_diagnoses_run(gateway: Gateway) -> None:
    # A 3x3 mosaic of a group photo takes the workers a good while (20 faces, the large detector pass).
    image = tiled("group/02.jpg", 3)
    assert len(image) < MAX_UPLOAD
    finished: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()
    started = threading.Barrier(5)

    def diagnose() -> None:
        with gateway.client(timeout=120) as c:
            started.wait()
            response = post_image(c, image)
        with lock:
            finished.append(time.monotonic())
            statuses.append(response.status_code)

    threads = [threading.Thread(target=diagnose) for _ in range(4)]
    for t in threads:
        t.start()
    started.wait()
    time.sleep(0.1)  # let the four uploads reach the workers
    with gateway.client(timeout=60) as c:
        health = c.get("/healthz")
    answered = time.monotonic()
    for t in threads:
        t.join(timeout=180)
    assert health.status_code == 200
    assert statuses == [200] * 4
    assert answered < max(finished), "/healthz waited for the diagnoses: the event loop is blocked"


# --------------------------------------------------------------------------- a gateway with nothing indexed


def test_empty_gallery_is_not_ready(tmp_path: Path) -> None:
    with run_gateway(tmp_path / "data", tmp_path, expect_ready=False) as empty, empty.client() as c:
        ready = c.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["ready"] is False
        assert ready.json()["checks"]["database"] == "ok"
        assert ready.json()["checks"]["models"] == "ok"
        assert ready.json()["checks"]["index"].startswith("empty")
        assert_error(post_image(c, read("probes/hori_miona/11.jpg")), 409, "no_index")
        assert c.get("/groups").json() == []
        assert c.get("/members").json() == []
