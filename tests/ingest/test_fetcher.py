"""The fetcher against a real HTTP site on loopback: politeness, SSRF guard, caps, deadline, retries, sniffing.

Nothing here may reach a non-loopback address: an autouse fixture makes any such connection or DNS lookup
fail the test, so a broken guard shows up as a failure instead of traffic.
"""

from __future__ import annotations

import ipaddress
import logging
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from loopback import LoopbackHandler, start, stop

from lookalike.imaging import ImageFormat
from lookalike.ingest.fetcher import (
    FetchedImage,
    Fetcher,
    FetchPolicy,
    FetchRefused,
    HostRateLimiter,
    is_blocked_address,
)

FACES = Path(__file__).resolve().parents[1] / "data" / "faces"
JPEGS = [p.read_bytes() for p in sorted((FACES / "mini_gallery").rglob("*.jpg"))[:4]]
MAX_BYTES = 200_000
HTML = b"<!doctype html><html><head><title>x</title></head><body><p>not a photo</p></body></html>"
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00"


# --------------------------------------------------------------------------- no traffic off loopback


def _is_loopback_literal(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        pass
    try:  # legacy numeric forms such as "2130706433" resolve without DNS
        return ipaddress.ip_address(socket.inet_aton(host)).is_loopback
    except OSError:
        return False


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    real_connect, real_resolve = socket.create_connection, socket.getaddrinfo

    def connect(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        if not _is_loopback_literal(str(address[0])):
            raise AssertionError(f"test tried to connect to {address}")
        return real_connect(address, *args, **kwargs)

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _is_loopback_literal(str(host)) and not _is_ip_literal(str(host)):
            raise AssertionError(f"test tried to resolve {host!r}")
        return real_resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", connect)
    monkeypatch.setattr(socket, "getaddrinfo", resolve)


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "lookalike.ingest.fetcher")


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- the site


@dataclass
class Site:
    server: ThreadingHTTPServer
    hits: Counter[str] = field(default_factory=Counter)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    other_port: int = 0

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def count(self, key: str) -> int:
        with self.lock:
            self.hits[key] += 1
            return self.hits[key]


class Handler(LoopbackHandler):
    site: Site  # set on a per-site subclass

    def route(self, path: str, query: str) -> None:
        key = path + (f"?{query}" if query else "")
        n = self.site.count(key)
        with self.site.lock:
            self.site.headers[key] = dict(self.headers.items())
        self.serve(path, n)

    def serve(self, path: str, n: int) -> None:
        site, port = self.site, self.site.port
        if path == "/robots.txt":
            self.reply(200, b"User-agent: *\nDisallow: /private/\n", "text/plain")
        elif path.startswith("/img/"):
            self.reply(200, JPEGS[int(path[5])], "image/jpeg")
        elif path == "/private/secret.jpg":
            self.reply(200, JPEGS[0], "image/jpeg")
        elif path == "/host-check.jpg":
            ok = self.headers.get("Host") == f"photos.test:{port}"
            self.reply(200 if ok else 400, JPEGS[0] if ok else b"wrong host", "image/jpeg")
        elif path == "/page.html":
            self.reply(200, HTML, "text/html; charset=utf-8")
        elif path == "/text.txt":
            self.reply(200, b"hello, not a picture", "text/plain")
        elif path == "/photo.jpg":  # HTML dressed up as a JPEG
            self.reply(200, HTML * 100, "image/jpeg")
        elif path == "/anim.gif":
            self.reply(200, GIF, "image/gif")
        elif path == "/missing.jpg":
            self.reply(404, b"no", "text/plain")
        elif path == "/down.jpg":
            self.reply(503, b"down", "text/plain")
        elif path == "/flaky.jpg":
            self.reply(500, b"oops", "text/plain") if n == 1 else self.reply(200, JPEGS[1], "image/jpeg")
        elif path == "/busy.jpg":
            if n == 1:
                self.reply(429, b"slow down", "text/plain", Retry_After="1")
            else:
                self.reply(200, JPEGS[2], "image/jpeg")
        elif path == "/busy-long.jpg":
            self.reply(429, b"come back tomorrow", "text/plain", Retry_After="3600")
        elif path == "/big-cl.jpg":  # declares far more than the cap, then dawdles
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", "50000000")
            self.end_headers()
            self.wfile.write(JPEGS[0][:4096])
            for _ in range(50):
                time.sleep(0.1)
                self.wfile.write(b"\x00")
        elif path == "/big-stream.jpg":  # no Content-Length, never ends on its own
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.end_headers()
            self.wfile.write(JPEGS[0][:4096])
            for _ in range(2000):
                self.wfile.write(b"\x00" * 65536)
        elif path == "/drip.jpg":  # a byte every 0.5 s: no read ever times out, only the deadline can stop it
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"\xff\xd8\xff")
            for _ in range(40):
                time.sleep(0.5)
                self.wfile.write(b"\x00")
        elif path == "/drip-headers":  # the same trick during the headers
            self.wfile.write(b"HTTP/1.0 200 OK\r\nX-Drip: ")
            for _ in range(60):
                time.sleep(0.3)
                self.wfile.write(b"a")
        elif path == "/redirect/ok":
            self.reply(302, b"", "text/plain", Location="/img/1.jpg")
        elif path == "/redirect/other-port":
            self.reply(302, b"", "text/plain", Location=f"http://127.0.0.1:{site.other_port}/img/0.jpg")
        elif path == "/redirect/loopback2":
            self.reply(302, b"", "text/plain", Location=f"http://127.0.0.2:{port}/img/0.jpg")
        elif path == "/redirect/metadata":
            self.reply(302, b"", "text/plain", Location="http://169.254.169.254/latest/meta-data/")
        elif path == "/redirect/metadata-name":
            self.reply(302, b"", "text/plain", Location="http://metadata.google.internal/computeMetadata/v1/")
        elif path == "/redirect/ftp":
            self.reply(302, b"", "text/plain", Location="ftp://127.0.0.1/photo.jpg")
        elif path.startswith("/redirect/loop/"):
            self.reply(302, b"", "text/plain", Location=f"/redirect/loop/{int(path.rsplit('/', 1)[1]) + 1}")
        else:
            self.reply(404, b"not found", "text/plain")


def _serve() -> Site:
    class SiteHandler(Handler):
        pass

    site = Site(start(SiteHandler))
    SiteHandler.site = site
    return site


@pytest.fixture(scope="module")
def sites() -> Iterator[tuple[Site, Site]]:
    """The site under test, and another loopback server (another port) that is NOT allowlisted."""
    site, other = _serve(), _serve()
    site.other_port = other.port
    yield site, other
    stop(site.server, other.server)


@pytest.fixture
def site(sites: tuple[Site, Site]) -> Site:
    return sites[0]


def make_fetcher(site: Site, resolver: Callable[[str, int], list[str]] | None = None, **overrides: Any) -> Fetcher:
    options: dict[str, Any] = {
        "per_host_interval_s": 0.0,
        "deadline_s": 5.0,
        "backoff_s": 0.05,
        "max_bytes": MAX_BYTES,
        "allow_private": frozenset({f"127.0.0.1:{site.port}"}),
    }
    options.update(overrides)
    policy = FetchPolicy(**options)
    return Fetcher(policy) if resolver is None else Fetcher(policy, resolver=resolver)


def refused(fetch: Callable[[], object]) -> FetchRefused:
    with pytest.raises(FetchRefused) as info:
        fetch()
    return info.value


def assert_logged(caplog: pytest.LogCaptureFixture, reason: str, url: str) -> None:
    messages = [r.getMessage() for r in caplog.records if r.name == "lookalike.ingest.fetcher"]
    assert any(f"[{reason}]" in m and url in m for m in messages), messages


# --------------------------------------------------------------------------- happy paths


def test_fetches_a_real_jpeg_politely(site: Site) -> None:
    fetcher = make_fetcher(site)
    image = fetcher.fetch_image(site.url("/img/0.jpg"), referer=site.url("/page.html"))
    assert isinstance(image, FetchedImage)
    assert image.data == JPEGS[0] and image.format is ImageFormat.JPEG
    assert image.final_url == image.url == site.url("/img/0.jpg")
    assert image.fetched_at.tzinfo is UTC
    sent = site.headers["/img/0.jpg"]
    assert sent["User-Agent"].startswith("lookalike/")
    assert sent["Referer"] == site.url("/page.html")
    assert sent["Accept-Encoding"] == "identity"
    before = site.hits["/robots.txt"]
    fetcher.fetch_image(site.url("/img/1.jpg"))
    assert site.hits["/robots.txt"] == before  # robots.txt cached per fetcher


def test_follows_a_redirect_on_the_same_site(site: Site) -> None:
    image = make_fetcher(site).fetch_image(site.url("/redirect/ok"))
    assert image.final_url == site.url("/img/1.jpg") and image.data == JPEGS[1]


def test_fetch_page_returns_html_and_refuses_other_types(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    fetcher = make_fetcher(site)
    page = fetcher.fetch_page(site.url("/page.html"))
    assert page.html == HTML.decode() and page.final_url == site.url("/page.html")
    exc = refused(lambda: fetcher.fetch_page(site.url("/img/0.jpg")))
    assert exc.reason == "not_html"
    assert_logged(caplog, "not_html", site.url("/img/0.jpg"))


def test_connection_goes_to_the_address_that_was_checked(site: Site) -> None:
    """The name is resolved by our resolver, not the system's: 'photos.test' exists only there."""
    calls: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]

    fetcher = make_fetcher(site, resolver, obey_robots=False)
    image = fetcher.fetch_image(f"http://photos.test:{site.port}/host-check.jpg")
    assert image.data == JPEGS[0]  # the server saw Host: photos.test:PORT
    assert calls == ["photos.test", "photos.test"]  # early check, then the check at connect time


def test_dns_rebinding_is_caught_at_connect_time(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    answers = iter([["127.0.0.1"], ["10.0.0.7"]])  # public-looking first, internal when it counts

    def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    url = f"http://rebind.test:{site.port}/img/0.jpg"
    exc = refused(lambda: make_fetcher(site, rebinding, obey_robots=False).fetch_image(url))
    assert exc.reason == "ssrf_blocked" and "10.0.0.7" in exc.message
    assert_logged(caplog, "ssrf_blocked", url)


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("ftp://127.0.0.1/photo.jpg", "bad_scheme"),
        ("file:///etc/passwd", "bad_scheme"),
        ("/redirect/ftp", "bad_scheme"),
        ("http://user:secret@127.0.0.1:{port}/img/0.jpg", "bad_url"),
        ("http://127.0.0.1:{other}/img/0.jpg", "ssrf_blocked"),  # loopback, but not the allowlisted port
        ("http://[::1]:{port}/img/0.jpg", "ssrf_blocked"),
        ("http://[::ffff:127.0.0.1]:{other}/img/0.jpg", "ssrf_blocked"),
        ("http://2130706433:{other}/img/0.jpg", "ssrf_blocked"),  # 127.0.0.1 spelt as a number
        ("http://10.0.0.1/photo.jpg", "ssrf_blocked"),
        ("http://100.64.0.1/photo.jpg", "ssrf_blocked"),
        ("http://169.254.169.254/latest/meta-data/", "ssrf_blocked"),
        ("http://metadata.google.internal/computeMetadata/v1/", "ssrf_blocked"),
        ("/redirect/other-port", "ssrf_blocked"),
        ("/redirect/loopback2", "ssrf_blocked"),
        ("/redirect/metadata", "ssrf_blocked"),
        ("/redirect/metadata-name", "ssrf_blocked"),
        ("/redirect/loop/0", "too_many_redirects"),
        ("/private/secret.jpg", "robots_disallowed"),
        ("/text.txt", "not_an_image"),
        ("/photo.jpg", "not_an_image"),
        ("/anim.gif", "not_an_image"),
        ("/missing.jpg", "http_status"),
    ],
)
def test_refusals(sites: tuple[Site, Site], target: str, reason: str, caplog: pytest.LogCaptureFixture) -> None:
    site, other = sites
    url = target.format(port=site.port, other=other.port)
    url = site.url(url) if url.startswith("/") else url
    before = sum(other.hits.values())
    exc = refused(lambda: make_fetcher(site, max_redirects=3).fetch_image(url))
    assert exc.reason == reason, exc.message
    assert exc.url == url and exc.code == "fetch_refused"
    assert_logged(caplog, reason, url)
    assert sum(other.hits.values()) == before  # the non-allowlisted server never saw a request
    if reason == "robots_disallowed":
        assert site.hits["/private/secret.jpg"] == 0
    if reason == "http_status":
        assert exc.http_status == 404


def test_robots_can_be_ignored_by_policy(site: Site) -> None:
    assert make_fetcher(site, obey_robots=False).fetch_image(site.url("/private/secret.jpg")).data == JPEGS[0]


def test_metadata_stays_blocked_even_when_its_range_is_allowlisted(site: Site) -> None:
    fetcher = make_fetcher(site, allow_private=frozenset({"169.254.0.0/16", "fd00::/8"}))
    assert refused(lambda: fetcher.fetch_image("http://169.254.169.254/")).reason == "ssrf_blocked"
    assert refused(lambda: fetcher.fetch_image("http://[fd00:ec2::254]/")).reason == "ssrf_blocked"


def test_allowlisted_host_name(site: Site) -> None:
    fetcher = make_fetcher(
        site, lambda host, port: ["127.0.0.1"], allow_private=frozenset({"photos.test"}), obey_robots=False
    )
    assert fetcher.fetch_image(f"http://photos.test:{site.port}/host-check.jpg").data == JPEGS[0]
    other_name = f"http://evil.test:{site.port}/host-check.jpg"
    assert refused(lambda: fetcher.fetch_image(other_name)).reason == "ssrf_blocked"


@pytest.mark.parametrize("entry", ["", "10.0.0.0/33", "host:99999", "a b", "[::1]x"])
def test_bad_allowlist_entries_are_rejected(entry: str) -> None:
    with pytest.raises(ValueError):
        FetchPolicy(allow_private=frozenset({entry}))


@pytest.mark.parametrize(
    ("address", "blocked"),
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),
        ("100.64.0.1", True),
        ("0.0.0.0", True),
        ("224.0.0.1", True),
        ("240.0.0.1", True),
        ("255.255.255.255", True),
        ("::1", True),
        ("::", True),
        ("fe80::1", True),
        ("fc00::1", True),
        ("fec0::1", True),
        ("2001:db8::1", True),
        ("192.0.2.1", True),
        ("fd00:ec2::254", True),
        ("ff02::1", True),
        ("::ffff:10.0.0.1", True),
        ("::ffff:127.0.0.1", True),
        ("2002:7f00:1::1", True),  # 6to4 wrapping 127.0.0.1
        ("64:ff9b::a00:1", True),  # NAT64 wrapping 10.0.0.1
        ("8.8.8.8", False),
        ("93.184.215.14", False),
        ("2606:4700:4700::1111", False),
        ("::ffff:8.8.8.8", False),
    ],
)
def test_address_classification(address: str, blocked: bool) -> None:
    assert is_blocked_address(ipaddress.ip_address(address)) is blocked


# --------------------------------------------------------------------------- size, time, retries


def test_content_length_over_the_cap_is_refused_before_the_body(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    start = time.monotonic()
    exc = refused(lambda: make_fetcher(site).fetch_image(site.url("/big-cl.jpg")))
    assert exc.reason == "too_large" and "Content-Length" in exc.message
    assert time.monotonic() - start < 1.0  # the server would dawdle for 5 s
    assert_logged(caplog, "too_large", site.url("/big-cl.jpg"))


def test_endless_body_is_cut_at_the_cap(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    exc = refused(lambda: make_fetcher(site).fetch_image(site.url("/big-stream.jpg")))
    assert exc.reason == "too_large" and "body" in exc.message
    assert_logged(caplog, "too_large", site.url("/big-stream.jpg"))


@pytest.mark.parametrize("path", ["/drip.jpg", "/drip-headers"])
def test_slow_drip_hits_the_total_deadline(site: Site, path: str, caplog: pytest.LogCaptureFixture) -> None:
    start = time.monotonic()
    exc = refused(lambda: make_fetcher(site, deadline_s=2.0).fetch_image(site.url(path)))
    elapsed = time.monotonic() - start
    print(f"{path}: refused after {elapsed:.2f} s with a 2 s deadline")
    assert exc.reason == "deadline_exceeded"
    assert 1.9 <= elapsed < 3.0
    assert_logged(caplog, "deadline_exceeded", site.url(path))


def test_retries_a_500(site: Site) -> None:
    image = make_fetcher(site).fetch_image(site.url("/flaky.jpg"))
    assert image.data == JPEGS[1] and site.hits["/flaky.jpg"] == 2


def test_waits_for_retry_after_on_429(site: Site) -> None:
    start = time.monotonic()
    image = make_fetcher(site).fetch_image(site.url("/busy.jpg"))
    assert image.data == JPEGS[2] and site.hits["/busy.jpg"] == 2
    assert time.monotonic() - start >= 1.0


def test_unreasonable_retry_after_is_not_waited_for(site: Site) -> None:
    start = time.monotonic()
    exc = refused(lambda: make_fetcher(site).fetch_image(site.url("/busy-long.jpg")))
    assert exc.reason == "http_status" and exc.http_status == 429
    assert time.monotonic() - start < 1.0


def test_gives_up_after_the_retries(site: Site) -> None:
    before = site.hits["/down.jpg"]
    exc = refused(lambda: make_fetcher(site, retries=2).fetch_image(site.url("/down.jpg")))
    assert exc.reason == "http_status" and exc.http_status == 503
    assert site.hits["/down.jpg"] - before == 3


def test_connection_failure(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/img/0.jpg"
    exc = refused(lambda: make_fetcher(site, allow_private=frozenset({"127.0.0.1"})).fetch_image(url))
    assert exc.reason == "connection_failed"
    assert_logged(caplog, "connection_failed", url)


# --------------------------------------------------------------------------- rate limit


def test_rate_limit_per_host_sequential(site: Site) -> None:
    fetcher = make_fetcher(site, per_host_interval_s=0.3, obey_robots=False)
    start = time.monotonic()
    for i in range(4):
        fetcher.fetch_image(site.url(f"/img/{i}.jpg"))
    elapsed = time.monotonic() - start
    print(f"4 sequential requests to one host at 0.3 s interval: {elapsed:.2f} s")
    assert elapsed >= 3 * 0.3


def test_rate_limit_per_host_across_threads(site: Site) -> None:
    fetcher = make_fetcher(site, per_host_interval_s=0.3, obey_robots=False)
    start = time.monotonic()
    threads = [threading.Thread(target=fetcher.fetch_image, args=(site.url(f"/img/{i}.jpg"),)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    print(f"4 concurrent requests to one host at 0.3 s interval: {elapsed:.2f} s")
    assert elapsed >= 3 * 0.3


def test_rate_limiter_keeps_hosts_apart() -> None:
    limiter = HostRateLimiter(0.3)
    assert limiter.wait("a.example") == 0.0
    assert limiter.wait("b.example") == 0.0  # another host does not wait
    assert limiter.wait("a.example") > 0.2


# --------------------------------------------------------------------------- TLS through the pinned connection


@pytest.fixture(scope="module")
def tls_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, ssl.SSLContext]]:
    """An HTTPS copy of the site with a throwaway self-signed certificate for the name photos.test."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=photos.test",
         "-addext", "subjectAltName=DNS:photos.test", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    site = _serve()
    site.server.socket = server_ctx.wrap_socket(site.server.socket, server_side=True)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    yield site, client_ctx
    stop(site.server)


def test_https_is_verified_against_the_name_not_the_pinned_address(
    tls_site: tuple[Site, ssl.SSLContext], caplog: pytest.LogCaptureFixture
) -> None:
    site, client_ctx = tls_site
    policy = FetchPolicy(per_host_interval_s=0.0, deadline_s=5.0, allow_private=frozenset({f"127.0.0.1:{site.port}"}))
    fetcher = Fetcher(policy, resolver=lambda host, port: ["127.0.0.1"], ssl_context=client_ctx)
    image = fetcher.fetch_image(f"https://photos.test:{site.port}/host-check.jpg")  # SNI and Host: photos.test
    assert image.data == JPEGS[0]
    wrong = f"https://other.test:{site.port}/img/0.jpg"  # same address, a name the certificate does not cover
    exc = refused(lambda: fetcher.fetch_image(wrong))
    assert exc.reason == "connection_failed" and "CERTIFICATE_VERIFY_FAILED" in exc.message
    assert_logged(caplog, "connection_failed", wrong)
