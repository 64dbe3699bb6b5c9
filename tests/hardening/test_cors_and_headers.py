"""CORS and security headers of a real `lookalike serve`: no cross-origin access unless an origin is configured,
and the headers that keep the pages out of frames and every answer from being sniffed into another type.

That the bundled UI satisfies the Content-Security-Policy is shown by tests/ui, which fail on any console error.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_api import Gateway, run_gateway

ALLOWED = "https://lookalike.example"
OTHER = "https://evil.example"
PAGES = ["/", "/admin", "/static/style.css", "/static/js/diagnose.js", "/static/favicon.svg"]
API = ["/groups", "/healthz", "/about", "/jobs/00000000-0000-0000-0000-000000000000"]


def serve(demo_data_dir: Path, work: Path, **env: str) -> Iterator[Gateway]:
    shutil.copytree(demo_data_dir, work / "data")
    with run_gateway(work / "data", work, cli=True, **env) as running:
        yield running


@pytest.fixture(scope="module")
def default(demo_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    yield from serve(demo_data_dir, tmp_path_factory.mktemp("headers-default"))


@pytest.fixture(scope="module")
def with_cors(demo_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    yield from serve(demo_data_dir, tmp_path_factory.mktemp("headers-cors"), LOOKALIKE_CORS_ORIGINS=ALLOWED)


def preflight(client: httpx.Client, origin: str) -> httpx.Response:
    headers = {"Origin": origin, "Access-Control-Request-Method": "POST"}
    return client.options("/diagnose", headers=headers)


def test_no_cors_by_default(default: Gateway) -> None:
    with default.client() as c:
        for origin in (ALLOWED, OTHER):
            answer = c.get("/groups", headers={"Origin": origin})
            assert answer.status_code == 200
            assert "access-control-allow-origin" not in answer.headers
            assert "access-control-allow-origin" not in preflight(c, origin).headers


def test_configured_origin_only(with_cors: Gateway) -> None:
    with with_cors.client() as c:
        answer = c.get("/groups", headers={"Origin": ALLOWED})
        assert answer.headers["access-control-allow-origin"] == ALLOWED
        allowed = preflight(c, ALLOWED)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == ALLOWED
        assert "POST" in allowed.headers["access-control-allow-methods"]
        # Errors are readable from the allowed origin too.
        error = c.post("/diagnose", files={"image": ("n.txt", b"no photo")}, headers={"Origin": ALLOWED})
        assert error.status_code == 415
        assert error.headers["access-control-allow-origin"] == ALLOWED
        assert "access-control-allow-origin" not in c.get("/groups", headers={"Origin": OTHER}).headers
        assert "access-control-allow-origin" not in preflight(c, OTHER).headers


@pytest.mark.parametrize("path", PAGES)
def test_pages_and_their_files_carry_the_security_headers(default: Gateway, path: str) -> None:
    with default.client() as c:
        answer = c.get(path)
    assert answer.status_code == 200
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["referrer-policy"] == "no-referrer"
    directives = (d.partition(" ") for d in answer.headers["content-security-policy"].split("; "))
    policy = {name: value for name, _, value in directives}
    assert policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'"
    assert policy["default-src"] == "'self'"
    # Nothing inline or evaluated may run: an injected script or handler attribute would be refused.
    for directive in ("script-src", "style-src"):
        assert policy[directive] == "'self'"


@pytest.mark.parametrize("path", API)
def test_api_answers_are_not_sniffed(default: Gateway, path: str) -> None:
    with default.client() as c:
        answer = c.get(path)
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.headers["x-content-type-options"] == "nosniff"
