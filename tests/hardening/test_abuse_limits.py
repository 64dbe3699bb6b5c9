"""Abuse limits of POST /diagnose, against real `lookalike serve` processes over real sockets.

A client over its allowance gets 429 rate_limited, one with too many requests running 429 too_many_in_flight, and
everyone gets 503 queue_full while the diagnose queue is full (embedded: jobs of this gateway; distributed: the
broker's queue); each with Retry-After and the JSON error. The client is the peer address: X-Forwarded-For names
it only when the proxy is trusted (LOOKALIKE_TRUSTED_PROXIES), so the limits gateway trusts 127.0.0.1 and each
test below is a different client to it.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_api import FACES, Gateway, run_gateway

RATE_LIMIT = 5
RATE_WINDOW_S = 5.0  # a token a second: the test sleeps through a refill and a whole window
CONCURRENCY = 2
QUEUE_MAX = 3
PROBE = (FACES / "probes" / "saito_asuka" / "11.jpg").read_bytes()
NOT_AN_IMAGE = {"image": ("note.txt", b"not a photo", "text/plain")}
ABUSE_REDIS_URL = os.environ.get("LOOKALIKE_TEST_ABUSE_REDIS_URL", "redis://127.0.0.1:6379/13")
ADMIN_TOKEN = "abuse-limits-test-token-" + "0123456789abcdef" * 2


def limits_env(**extra: str) -> dict[str, str]:
    env = {
        "LOOKALIKE_DIAGNOSE_RATE_LIMIT": str(RATE_LIMIT),
        "LOOKALIKE_DIAGNOSE_RATE_WINDOW_S": str(RATE_WINDOW_S),
        "LOOKALIKE_DIAGNOSE_CLIENT_CONCURRENCY": str(CONCURRENCY),
        "LOOKALIKE_DIAGNOSE_QUEUE_MAX": str(QUEUE_MAX),
    }
    return {**env, **extra}


@pytest.fixture(scope="module")
def limited(demo_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """`lookalike serve` with small limits, one diagnose worker, and 127.0.0.1 trusted as a proxy."""
    work = tmp_path_factory.mktemp("abuse")
    shutil.copytree(demo_data_dir, work / "data")
    env = limits_env(LOOKALIKE_WORKERS="1", LOOKALIKE_TRUSTED_PROXIES="127.0.0.1")
    with run_gateway(work / "data", work, cli=True, **env) as running:
        yield running


def as_client(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


def refusal(response: httpx.Response, status: int, code: str) -> int:
    """The refusal's Retry-After (whole seconds, as HTTP has it), after checking its status and JSON error."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == code, response.text
    assert response.json()["error"]["message"]
    retry_after = int(response.headers["retry-after"])
    assert retry_after >= 1
    return retry_after


def post(client: httpx.Client, address: str, **kwargs: Any) -> httpx.Response:
    return client.post("/diagnose", headers=as_client(address), **kwargs)


def test_rate_limit_answers_429_with_retry_after_then_resets(limited: Gateway) -> None:
    with limited.client() as c:
        # The allowance is a burst of RATE_LIMIT requests; an upload that is no picture costs the same.
        burst = [post(c, "198.51.100.1", files=NOT_AN_IMAGE) for _ in range(RATE_LIMIT)]
        assert [r.status_code for r in burst] == [415] * RATE_LIMIT
        retry_after = refusal(post(c, "198.51.100.1", files=NOT_AN_IMAGE), 429, "rate_limited")
        # One request per window / limit seconds comes back: Retry-After is that wait, not the whole window.
        assert retry_after <= RATE_WINDOW_S / RATE_LIMIT + 1
        # Another client has its own allowance, and photos are diagnosed as usual.
        assert post(c, "198.51.100.2", files={"image": ("p.jpg", PROBE, "image/jpeg")}).status_code == 200
        time.sleep(retry_after)
        assert post(c, "198.51.100.1", files=NOT_AN_IMAGE).status_code == 415
        refusal(post(c, "198.51.100.1", files=NOT_AN_IMAGE), 429, "rate_limited")
        # A window after its last request the client has its whole burst again.
        time.sleep(RATE_WINDOW_S)
        again = [post(c, "198.51.100.1", files=NOT_AN_IMAGE) for _ in range(RATE_LIMIT)]
        assert [r.status_code for r in again] == [415] * RATE_LIMIT
        refusal(post(c, "198.51.100.1", files=NOT_AN_IMAGE), 429, "rate_limited")
        # Operators see the refusals.
        assert re.search(
            r'^lookalike_diagnose_refused_total\{code="rate_limited"\} [3-9]', c.get("/metrics").text, re.M
        )


def held_upload(release: threading.Event, sent: threading.Event) -> tuple[dict[str, str], Iterator[bytes]]:
    """A multipart upload of the probe whose body stops half-way until `release` is set."""
    request = httpx.Request("POST", "http://x/diagnose", files={"image": ("p.jpg", PROBE, "image/jpeg")})
    body = request.read()
    headers = {"Content-Type": request.headers["content-type"]}

    def chunks() -> Iterator[bytes]:
        yield body[: len(body) // 2]
        sent.set()
        release.wait(60)
        yield body[len(body) // 2 :]

    return headers, chunks()


def test_concurrency_cap_counts_requests_in_flight(limited: Gateway) -> None:
    address = "198.51.100.3"
    release = threading.Event()
    sent = [threading.Event() for _ in range(CONCURRENCY)]

    def held(k: int) -> int:
        headers, chunks = held_upload(release, sent[k])
        with limited.client() as c:
            return c.post("/diagnose", content=chunks, headers={**headers, **as_client(address)}).status_code

    with ThreadPoolExecutor(CONCURRENCY) as pool, limited.client() as c:
        try:
            running = [pool.submit(held, k) for k in range(CONCURRENCY)]
            assert all(event.wait(30) for event in sent)
            time.sleep(0.5)  # the half bodies reach the server
            refusal(post(c, address, files=NOT_AN_IMAGE), 429, "too_many_in_flight")
            # Only this client's requests count.
            assert post(c, "198.51.100.4", files=NOT_AN_IMAGE).status_code == 415
        finally:
            release.set()
        assert [r.result(timeout=120) for r in running] == [200] * CONCURRENCY
        assert post(c, address, files=NOT_AN_IMAGE).status_code == 415


def wait_finished(client: httpx.Client, job_ids: list[str], timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    for job_id in job_ids:
        while client.get(f"/jobs/{job_id}").json()["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline, f"job {job_id} did not finish in {timeout_s:.0f}s"
            time.sleep(0.2)


def submit(client: httpx.Client, address: str, *, explain: bool = False) -> httpx.Response:
    files = {"image": ("p.jpg", PROBE, "image/jpeg")}
    params = {"async": "true", "explain": "true"} if explain else {"async": "true"}
    return post(client, address, files=files, params=params)


def test_queue_cap_answers_503_with_retry_after_until_the_queue_drains(limited: Gateway) -> None:
    with limited.client() as c:
        # explain=true keeps the one worker busy for seconds: the jobs behind it wait in the queue.
        accepted = [submit(c, "198.51.100.10", explain=True)]
        accepted += [submit(c, f"198.51.100.{11 + k}") for k in range(QUEUE_MAX - 1)]
        assert [r.status_code for r in accepted] == [202] * QUEUE_MAX, [r.text for r in accepted]
        # A new client too: the queue cap is global.
        refusal(submit(c, "198.51.100.20"), 503, "queue_full")
        wait_finished(c, [r.json()["job_id"] for r in accepted])
        later = submit(c, "198.51.100.20")
        assert later.status_code == 202, later.text
        wait_finished(c, [later.json()["job_id"]])


def test_forwarded_for_is_not_trusted_by_default(demo_data_dir: Path, tmp_path: Path) -> None:
    """Without LOOKALIKE_TRUSTED_PROXIES, a client cannot escape its limits by naming other addresses."""
    shutil.copytree(demo_data_dir, tmp_path / "data")
    env = limits_env(LOOKALIKE_DIAGNOSE_RATE_WINDOW_S="600")
    with run_gateway(tmp_path / "data", tmp_path, cli=True, **env) as gateway, gateway.client() as c:
        answers = [post(c, f"203.0.113.{k}", files=NOT_AN_IMAGE) for k in range(RATE_LIMIT)]
        assert [r.status_code for r in answers] == [415] * RATE_LIMIT
        refusal(post(c, "203.0.113.99", files=NOT_AN_IMAGE), 429, "rate_limited")


def redis_or_skip(url: str) -> Any:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI requires Redis at {url}")
        pytest.skip(f"no Redis at {url} (set LOOKALIKE_TEST_ABUSE_REDIS_URL)")
    return client


@pytest.fixture(scope="module")
def broker() -> Iterator[Any]:
    client = redis_or_skip(ABUSE_REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture(scope="module")
def distributed(broker: Any, demo_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A distributed gateway with no worker: its messages stay in Redis's diagnose list, which the queue cap reads."""
    work = tmp_path_factory.mktemp("abuse-distributed")
    shutil.copytree(demo_data_dir, work / "data")
    env = limits_env(
        LOOKALIKE_BROKER_URL=ABUSE_REDIS_URL, LOOKALIKE_ADMIN_TOKEN=ADMIN_TOKEN, LOOKALIKE_DIAGNOSE_RATE_LIMIT="0"
    )
    with run_gateway(work / "data", work, cli=True, **env) as running:
        yield running


def test_distributed_queue_cap_is_the_broker_queue(distributed: Gateway, broker: Any) -> None:
    broker.delete("diagnose")
    with distributed.client() as c:

        def submit() -> httpx.Response:
            return c.post("/diagnose", files={"image": ("p.jpg", PROBE, "image/jpeg")}, params={"async": "true"})

        accepted = [submit() for _ in range(QUEUE_MAX)]
        assert [r.status_code for r in accepted] == [202] * QUEUE_MAX, [r.text for r in accepted]
        assert broker.llen("diagnose") == QUEUE_MAX
        refusal(submit(), 503, "queue_full")
        broker.lpop("diagnose")  # a worker takes one message
        assert submit().status_code == 202
        refusal(submit(), 503, "queue_full")
    broker.delete("diagnose")


def test_requests_racing_through_the_queue_check_are_counted_exactly(distributed: Gateway, broker: Any) -> None:
    """The distributed queue check awaits Redis, so one client's requests overlap in it: each must be counted in
    flight from before that await to its end, neither lost (a count gone wrong ends in a 500) nor left behind."""
    broker.delete("diagnose")
    empty = {"image": ("p.jpg", b"", "image/jpeg")}  # refused after the checks (415), so nothing is queued

    def client_thread(_: int) -> list[int]:
        with distributed.client() as c:
            return [c.post("/diagnose", files=empty).status_code for _ in range(20)]

    with ThreadPoolExecutor(4 * CONCURRENCY) as pool:
        answers = [status for statuses in pool.map(client_thread, range(4 * CONCURRENCY)) for status in statuses]
    assert set(answers) <= {415, 429}, sorted(answers)
    assert 415 in answers
    # Every slot came back: alone again, the client is not over its cap.
    with distributed.client() as c:
        assert c.post("/diagnose", files=empty).status_code == 415
    assert "Traceback" not in distributed.log.read_text()
