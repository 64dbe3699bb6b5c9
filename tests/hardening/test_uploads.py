"""Upload limits over real HTTP: lying Content-Length (both ways), slow bodies, chunked bodies and multipart
shapes, sent on raw sockets to a real gateway process, so that nothing in a client library tidies them up.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from test_api import Gateway, assert_error, read, run_gateway

MAX_UPLOAD = 1_000_000
UPLOAD_TIMEOUT_S = 2.0
BOUNDARY = "hardening-boundary"
PROBE = "probes/nibu_akari/11.jpg"


@pytest.fixture(scope="module")
def gateway(demo_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    work = tmp_path_factory.mktemp("uploads-gateway")
    shutil.copytree(demo_data_dir, work / "data")
    env = {
        "LOOKALIKE_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
        "LOOKALIKE_UPLOAD_TIMEOUT_S": str(UPLOAD_TIMEOUT_S),
        "LOOKALIKE_DIAGNOSE_RATE_LIMIT": "0",
        "LOOKALIKE_DIAGNOSE_CLIENT_CONCURRENCY": "0",
    }
    with run_gateway(work / "data", work, cli=True, **env) as running:
        yield running


@pytest.fixture(scope="module")
def client(gateway: Gateway) -> Iterator[httpx.Client]:
    with gateway.client() as c:
        yield c


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float  # from the end of sending to the end of the answer

    def error(self) -> dict[str, Any]:
        assert self.headers.get("content-type", "").startswith("application/json"), self
        parsed: dict[str, Any] = json.loads(self.body)
        assert set(parsed) == {"error"} and set(parsed["error"]) == {"code", "message"}, parsed
        return parsed["error"]


def multipart(*parts: tuple[str, str | None, bytes]) -> bytes:
    """(field name, file name or None, content) parts as one multipart/form-data body."""
    out = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def head(content_length: int | None, *, chunked: bool = False) -> bytes:
    lines = ["POST /diagnose HTTP/1.1", "Host: test", f"Content-Type: multipart/form-data; boundary={BOUNDARY}"]
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def exchange(gateway: Gateway, *pieces: bytes, pause_s: float = 0.0, wait_s: float = 15.0) -> Answer:
    """Send the pieces on one connection (pausing between them), then read one HTTP answer."""
    url = urlsplit(gateway.base_url)
    with socket.create_connection((url.hostname, url.port), timeout=wait_s) as sock:
        for i, piece in enumerate(pieces):
            if i and pause_s:
                time.sleep(pause_s)
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server answered and closed early: read what it said
        sent = time.monotonic()
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = sock.recv(65536)
            assert chunk, f"the connection closed without an answer: {raw!r}"
            raw += chunk
        header_block, body = raw.split(b"\r\n\r\n", 1)
        status_line, *header_lines = header_block.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in header_lines)}
        while len(body) < int(headers.get("content-length", 0)):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return Answer(int(status_line.split()[1]), headers, body, time.monotonic() - sent)


def still_serves(client: httpx.Client) -> None:
    response = client.post("/diagnose", files={"image": ("a.jpg", read(PROBE), "image/jpeg")})
    assert response.status_code == 200, response.text
    assert response.json()["faces"][0]["matches"][0]["slug"] == "nibu_akari"


# --------------------------------------------------------------------------- Content-Length


def test_declared_length_over_the_cap_is_refused_before_the_body(gateway: Gateway) -> None:
    answer = exchange(gateway, head(50 * MAX_UPLOAD))  # no body byte sent at all
    assert answer.status == 413 and answer.error()["code"] == "upload_too_large"
    assert answer.headers.get("connection") == "close"


def test_declared_length_larger_than_the_body_times_out(gateway: Gateway, client: httpx.Client) -> None:
    body = multipart(("image", "a.jpg", read(PROBE)))
    answer = exchange(gateway, head(len(body) + 5000) + body)
    assert answer.status == 408 and answer.error()["code"] == "upload_timeout"
    assert UPLOAD_TIMEOUT_S - 0.5 < answer.seconds < UPLOAD_TIMEOUT_S + 10
    assert answer.headers.get("connection") == "close"
    still_serves(client)


def test_declared_length_smaller_than_the_body(gateway: Gateway, client: httpx.Client) -> None:
    """The server reads exactly the declared bytes: here the form is cut before its closing boundary. What was
    read is answered on its own; the bytes beyond it are never part of this upload."""
    body = multipart(("image", "a.jpg", read(PROBE)))
    declared = len(body) - 2000
    answer = exchange(gateway, head(declared) + body[:declared])
    # The image part never reached its closing boundary, so the form has no image field.
    assert answer.status == 422 and answer.error()["code"] == "invalid_parameter"
    # Sent in one go, the rest is parsed as the next request on the connection, which uvicorn's HTTP parser
    # refuses (a plain-text 400 from the protocol layer, before any app code) and closes.
    pipelined = exchange(gateway, head(declared) + body)
    assert pipelined.status == 400
    still_serves(client)


def test_slow_drip_times_out(gateway: Gateway, client: httpx.Client) -> None:
    body = multipart(("image", "a.jpg", read(PROBE)))
    # Ten 500-byte chunks 0.4 s apart: the body would take 3.6 s, never ending within the 2 s deadline.
    drip = [f"{500:x}\r\n".encode() + body[i : i + 500] + b"\r\n" for i in range(0, 5000, 500)]
    started = time.monotonic()
    answer = exchange(gateway, head(None, chunked=True), *drip, pause_s=0.4)
    assert answer.status == 408 and answer.error()["code"] == "upload_timeout"
    assert time.monotonic() - started < UPLOAD_TIMEOUT_S + 10
    still_serves(client)


def test_chunked_body_over_the_cap(gateway: Gateway) -> None:
    body = multipart(("image", "a.jpg", b"\xff\xd8\xff" + b"\0" * (2 * MAX_UPLOAD)))
    chunks = [
        f"{len(body[i : i + 65536]):x}\r\n".encode() + body[i : i + 65536] + b"\r\n" for i in range(0, len(body), 65536)
    ]
    answer = exchange(gateway, head(None, chunked=True), *chunks, b"0\r\n\r\n")
    assert answer.status == 413 and answer.error()["code"] == "upload_too_large"


def test_chunked_body_within_the_cap_is_diagnosed(gateway: Gateway) -> None:
    body = multipart(("image", "a.jpg", read(PROBE)))
    chunks = [
        f"{len(body[i : i + 4096]):x}\r\n".encode() + body[i : i + 4096] + b"\r\n" for i in range(0, len(body), 4096)
    ]
    answer = exchange(gateway, head(None, chunked=True), *chunks, b"0\r\n\r\n", wait_s=60)
    assert answer.status == 200, answer.body[:300]
    assert json.loads(answer.body)["faces"][0]["matches"][0]["slug"] == "nibu_akari"


# --------------------------------------------------------------------------- multipart shape


def post_form(client: httpx.Client, body: bytes) -> httpx.Response:
    return client.post("/diagnose", content=body, headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"})


def test_one_file_and_a_group_is_diagnosed(client: httpx.Client) -> None:
    response = post_form(client, multipart(("image", "a.jpg", read(PROBE)), ("group", None, b"sakamichi")))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "parts",
    [
        [("image", "a.jpg", b"x"), *[(f"f{i}", None, b"1") for i in range(5)]],
        [("image", "a.jpg", b"x"), ("group", None, b"a" * 2000)],
    ],
    ids=["five-fields", "a-2-KB-field"],
)
def test_form_limits(client: httpx.Client, parts: list[tuple[str, str | None, bytes]]) -> None:
    assert_error(post_form(client, multipart(*parts)), 400, "invalid_form")


def test_several_image_parts_are_photos_of_one_person_and_each_is_checked(client: httpx.Client) -> None:
    """Two `image` parts are two photos of one person (POST /diagnose takes up to LOOKALIKE_MAX_PHOTOS): each is
    decided from its own bytes, and the refusal names the photo. A file part under another name is not a photo."""
    error = assert_error(
        post_form(client, multipart(("image", "a.jpg", b"x"), ("image", "b.jpg", b"y"))), 415, "not_an_image"
    )
    assert error["photo"] == 1
    error = assert_error(
        post_form(client, multipart(("image", "a.jpg", read(PROBE)), ("image", "b.jpg", b"GIF89a"))),
        415,
        "unsupported_image_type",
    )
    assert error["photo"] == 2
    ignored = post_form(client, multipart(("image", "a.jpg", read(PROBE)), ("other", "b.jpg", b"y")))
    assert ignored.status_code == 200, ignored.text


def test_many_files_are_refused_before_they_are_stored(client: httpx.Client) -> None:
    """More file parts than the parser takes (10): refused as the parser meets them, as too many photos."""
    parts = [(f"f{i}", f"{i}.jpg", b"\xff\xd8\xff" + b"\0" * 1000) for i in range(500)]
    assert_error(post_form(client, multipart(("image", "a.jpg", read(PROBE)), *parts)), 413, "too_many_photos")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"no boundary given"),
        (f"multipart/form-data; boundary={BOUNDARY}", b"--not-the-boundary\r\n\r\n"),
        (
            f"multipart/form-data; boundary={BOUNDARY}",
            f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nx".encode(),
        ),
    ],
    ids=["no-boundary", "wrong-boundary", "part-without-name"],
)
def test_malformed_multipart(client: httpx.Client, content_type: str, body: bytes) -> None:
    response = client.post("/diagnose", content=body, headers={"content-type": content_type})
    assert response.status_code in (400, 422), response.text
    assert_error(response, response.status_code, "invalid_form" if response.status_code == 400 else "invalid_parameter")
