"""Polite, SSRF-safe downloads of member photos and the pages that show them.

Every download is refused (`FetchRefused`, with a stable `reason`) unless it is http(s), every hop resolves
only to public addresses (or ones the policy allowlists), robots.txt allows it, it fits `max_bytes` and the
total deadline, and, for images, its bytes are a supported picture (decided by `sniff_format`, never by
Content-Type or file name).

DNS rebinding: the name is not resolved twice. httpx has no public hook for a network backend, so each
download gets an httpcore pool whose backend (`_GuardedBackend`) resolves the host itself, checks every
address it got, and connects to those checked addresses only; the URL, Host header, SNI and certificate check
stay those of the real name. An earlier check of the same URL only makes refusals early and clear.

Remaining gaps, by design: environment proxies are ignored (a proxy would resolve names itself and defeat
the guard); an allowlisted *host name* trusts whatever its DNS answers; the policy cannot see what an
allowed server does with the request (e.g. an open proxy on an allowlisted host).
"""

from __future__ import annotations

import contextlib
import email.utils
import ipaddress
import logging
import socket
import ssl
import threading
import time
import urllib.robotparser
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpcore
import httpx

from lookalike import __version__
from lookalike.errors import LookalikeError
from lookalike.imaging import ImageFormat, sniff_format

__all__ = [
    "FetchPolicy",
    "FetchRefused",
    "FetchedImage",
    "FetchedPage",
    "Fetcher",
    "HostRateLimiter",
    "RefusalReason",
    "is_blocked_address",
]

log = logging.getLogger(__name__)

RefusalReason = Literal[
    "bad_scheme",
    "bad_url",
    "ssrf_blocked",
    "robots_disallowed",
    "too_large",
    "deadline_exceeded",
    "not_an_image",
    "http_status",
    "too_many_redirects",
    "connection_failed",
    "not_html",
]

# Refusals that point at a hostile or broken remote are worth an operator's attention; the rest are routine.
_WARNING_REASONS = frozenset({"ssrf_blocked", "too_large", "deadline_exceeded", "too_many_redirects", "bad_url"})
_UPSTREAM_REASONS = frozenset({"http_status", "connection_failed", "deadline_exceeded"})

DEFAULT_USER_AGENT = f"lookalike/{__version__} (+https://github.com/lookalike/lookalike; member-photo ingestion)"
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_SNIFF_BYTES = 4096  # enough for every signature sniff_format knows (ftyp brand lists included)
_ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309: parse at least the first 500 KiB, ignore the rest
_MAX_CRAWL_DELAY_S = 60.0


class FetchRefused(LookalikeError):
    """A download that was not made or not kept; `reason` is stable, `http_status` set for "http_status"."""

    code = "fetch_refused"
    status = 422

    def __init__(self, reason: RefusalReason, url: str, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message, status=502 if reason in _UPSTREAM_REASONS else None)
        self.reason: RefusalReason = reason
        self.url = url
        self.http_status = http_status

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "reason": self.reason, "url": self.url}


# --------------------------------------------------------------------------- policy and address guard

_METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal"}
)
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200", "192.0.0.192")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, NAT64), which is what the packets reach."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_metadata_address(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            return inner in _METADATA_ADDRESSES
        ip = ipaddress.IPv6Address(str(ip).split("%")[0])  # a zone id would make equal addresses differ
    return ip in _METADATA_ADDRESSES


def is_blocked_address(ip: IPAddress) -> bool:
    """True for anything that is not a plain public unicast address.

    `not is_global` covers loopback, RFC 1918, link-local, CGNAT, ULA, documentation and unspecified ranges;
    multicast and site-local are listed because Python calls 224.0.0.0/4 and fec0::/10 global.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            return is_blocked_address(inner)
        if ip.is_site_local:
            return True
    return not ip.is_global or ip.is_multicast or ip.is_reserved or is_metadata_address(ip)


@dataclass(frozen=True, slots=True)
class _AllowEntry:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    host: str | None = None
    port: int | None = None

    def matches(self, host: str, port: int, ip: IPAddress) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return ip in self.network
        return host == self.host


def _parse_allow_entry(entry: str) -> _AllowEntry:
    """ "10.0.0.0/8", "127.0.0.1", "127.0.0.1:8080", "[::1]:8080", "::1", "files.internal", "files.internal:9000"."""
    text = entry.strip().lower()
    if not text:
        raise ValueError("empty allow_private entry")
    with contextlib.suppress(ValueError):
        return _AllowEntry(network=ipaddress.ip_network(text, strict=False))
    host, port = text, None
    if text.startswith("["):
        inside, _, rest = text[1:].partition("]")
        host = inside
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"bad allow_private entry {entry!r}")
            port = _parse_port(rest[1:], entry)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _parse_port(port_text, entry)
    try:
        return _AllowEntry(network=ipaddress.ip_network(host), port=port)
    except ValueError:
        pass
    if not host or "/" in host or ":" in host or any(c.isspace() for c in host):
        raise ValueError(f"bad allow_private entry {entry!r}")
    return _AllowEntry(host=host.rstrip("."), port=port)


def _parse_port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"bad port in allow_private entry {entry!r}")
    return int(text)


@dataclass(frozen=True)
class FetchPolicy:
    """How politely and how defensively to download. Defaults suit scraping a public site."""

    user_agent: str = DEFAULT_USER_AGENT
    per_host_interval_s: float = 1.0
    # Whole download: every hop, retry and backoff, through the last body byte (a slow drip included).
    # Waiting for our own rate-limit slot and robots.txt lookups do not count against it.
    deadline_s: float = 20.0
    connect_timeout_s: float = 5.0
    max_bytes: int = 20 * 1024 * 1024
    max_page_bytes: int = 5 * 1024 * 1024
    max_redirects: int = 5
    retries: int = 2
    backoff_s: float = 0.5
    # A longer Retry-After than this (or than the deadline has left) is not waited for.
    max_retry_after_s: float = 30.0
    obey_robots: bool = True
    # Hosts, host:port, IPs, IP:port or CIDRs let through the private-address guard (never metadata endpoints).
    allow_private: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.deadline_s <= 0 or self.connect_timeout_s <= 0:
            raise ValueError("deadline_s and connect_timeout_s must be positive")
        if self.max_bytes < 1 or self.max_page_bytes < 1:
            raise ValueError("max_bytes and max_page_bytes must be positive")
        if self.per_host_interval_s < 0 or self.retries < 0 or self.max_redirects < 0 or self.backoff_s < 0:
            raise ValueError("intervals, retries and redirects cannot be negative")
        for entry in self.allow_private:
            _parse_allow_entry(entry)


Resolver = Callable[[str, int], list[str]]


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _Guard:
    """Decides whether (host, port) may be contacted, and to which addresses."""

    def __init__(self, policy: FetchPolicy, resolver: Resolver) -> None:
        self._allow = [_parse_allow_entry(e) for e in policy.allow_private]
        self._resolve = resolver

    def addresses(self, host: str, port: int, url: str) -> list[str]:
        """The addresses to connect to; raises unless every address the name resolves to is acceptable."""
        name = host.lower().rstrip(".")
        if name in _METADATA_HOSTS:
            raise FetchRefused("ssrf_blocked", url, f"{host} is a cloud metadata endpoint")
        try:
            resolved = self._resolve(name, port)
        except (OSError, UnicodeError) as exc:
            raise FetchRefused("connection_failed", url, f"cannot resolve {host}: {exc}") from exc
        if not resolved:
            raise FetchRefused("connection_failed", url, f"{host} resolves to no address")
        for address in resolved:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError as exc:
                raise FetchRefused("ssrf_blocked", url, f"{host} resolves to unusable {address!r}") from exc
            # A name resolving to several addresses is refused if any is bad: we could be sent to any of them.
            if is_metadata_address(ip):
                raise FetchRefused("ssrf_blocked", url, f"{host} resolves to metadata address {ip}")
            if is_blocked_address(ip) and not any(e.matches(name, port, ip) for e in self._allow):
                raise FetchRefused("ssrf_blocked", url, f"{host}:{port} resolves to non-public address {ip}")
        return resolved


# --------------------------------------------------------------------------- deadline and pinned transport


class _Deadline:
    def __init__(self, budget_s: float) -> None:
        self._end = time.monotonic() + budget_s

    def remaining(self) -> float:
        return self._end - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def cap(self, timeout: float | None) -> float:
        remaining = self.remaining()
        if remaining <= 0:
            raise httpcore.ReadTimeout("download deadline exceeded")
        return remaining if timeout is None else min(timeout, remaining)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Time spent inside (our own politeness) is given back to the budget."""
        start = time.monotonic()
        try:
            yield
        finally:
            self._end += time.monotonic() - start


class _DeadlineStream(httpcore.NetworkStream):
    """Caps every socket operation by the download's remaining time, so no byte-drip outlives the deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.cap(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.cap(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        # The handshake's timeout applies per socket read; a watchdog bounds the handshake as a whole.
        sock = self._inner.get_extra_info("socket")
        timer = threading.Timer(self._deadline.cap(None), _shutdown, args=(sock,))
        timer.daemon = True
        timer.start()
        try:
            tls = self._inner.start_tls(ssl_context, server_hostname, self._deadline.cap(timeout))
        finally:
            timer.cancel()
        return _DeadlineStream(tls, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


def _shutdown(sock: object) -> None:
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class _GuardedBackend(httpcore.NetworkBackend):
    """Resolves, checks and connects in one place: the address connected to is the address checked."""

    def __init__(self, guard: _Guard, deadline: _Deadline, url: str) -> None:
        self._inner = httpcore.SyncBackend()
        self._guard = guard
        self._deadline = deadline
        self._url = url

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self._guard.addresses(host, port, self._url)
        error: Exception | None = None
        for address in addresses:
            try:
                stream = self._inner.connect_tcp(
                    address, port, self._deadline.cap(timeout), local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
                continue
            return _DeadlineStream(stream, self._deadline)
        assert error is not None
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are never used for fetching")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _PinnedTransport(httpx.HTTPTransport):
    def __init__(self, backend: httpcore.NetworkBackend, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, trust_env=False)
        # httpx takes no network backend, so the pool it built is swapped for one that uses ours (tested:
        # test_connection_goes_to_the_address_that_was_checked fails loudly if httpx changes this).
        # No keep-alive: each download has its own pool anyway, and nothing outlives its deadline.
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=1,
            max_keepalive_connections=0,
            http1=True,
            http2=False,
            retries=0,
            network_backend=backend,
        )


# --------------------------------------------------------------------------- rate limiting


class HostRateLimiter:
    """At most one request start per `interval` per host, across threads; sleeps outside the lock."""

    def __init__(self, interval_s: float) -> None:
        self._interval = interval_s
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}
        self._intervals: dict[str, float] = {}

    def set_interval(self, host: str, interval_s: float) -> None:
        with self._lock:
            self._intervals[host] = interval_s

    def wait(self, host: str) -> float:
        """Reserve the host's next slot and sleep until it; returns the seconds slept."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next.get(host, now))
            self._next[host] = slot + self._intervals.get(host, self._interval)
        delay = slot - now
        if delay > 0:
            time.sleep(delay)
        return max(delay, 0.0)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class FetchedImage:
    url: str
    final_url: str
    data: bytes
    format: ImageFormat
    fetched_at: datetime  # UTC


@dataclass(frozen=True, slots=True)
class FetchedPage:
    url: str
    final_url: str
    html: str


@dataclass(frozen=True, slots=True)
class _Body:
    final_url: str
    content_type: str
    charset: str | None
    data: bytes


# --------------------------------------------------------------------------- fetcher


def _effective_port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _retry_after_s(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class Fetcher:
    """Thread-safe; one per ingestion run, so robots.txt answers and rate-limit slots are shared."""

    def __init__(
        self,
        policy: FetchPolicy | None = None,
        *,
        resolver: Resolver = system_resolver,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """`resolver` and `ssl_context` (e.g. a private CA) are for tests and unusual networks."""
        self.policy = policy or FetchPolicy()
        self._guard = _Guard(self.policy, resolver)
        self._limiter = HostRateLimiter(self.policy.per_host_interval_s)
        # Verification on, certifi roots; environment settings are ignored on purpose (see module doc).
        self._ssl = ssl_context or httpx.create_ssl_context(trust_env=False)
        # A parser, or the refusal that made robots.txt unreachable (remembered: retrying would hammer a host
        # that is already failing).
        self._robots: dict[tuple[str, str, int], urllib.robotparser.RobotFileParser | FetchRefused] = {}
        self._robots_locks: dict[tuple[str, str, int], threading.Lock] = {}
        self._robots_guard = threading.Lock()

    # ----------------------------------------------------------------- public API

    def fetch_image(self, url: str, *, referer: str | None = None) -> FetchedImage:
        """Download one picture; raises FetchRefused (logged) for anything that is not a supported picture."""

        def sniff_prefix(prefix: bytes) -> None:
            self._sniff(prefix, url)

        with self._refusals_logged(url):
            body = self._download(
                url, referer=referer, accept="image/*", max_bytes=self.policy.max_bytes, check_prefix=sniff_prefix
            )
            fmt = self._sniff(body.data, url)
        return FetchedImage(url, body.final_url, body.data, fmt, datetime.now(UTC))

    def fetch_page(self, url: str) -> FetchedPage:
        """Download one HTML page (text/html or XHTML, at most `max_page_bytes`)."""
        with self._refusals_logged(url):
            body = self._download(
                url, referer=None, accept="text/html,application/xhtml+xml", max_bytes=self.policy.max_page_bytes
            )
            if body.content_type not in _HTML_TYPES:
                raise FetchRefused("not_html", url, f"served as {body.content_type or 'no content type'}, not HTML")
        return FetchedPage(url, body.final_url, _decode_html(body.data, body.charset))

    # ----------------------------------------------------------------- internals

    @contextlib.contextmanager
    def _refusals_logged(self, url: str) -> Iterator[None]:
        try:
            try:
                yield
            except httpx.HTTPError as exc:  # anything the specific handlers did not foresee
                raise FetchRefused("connection_failed", url, f"{type(exc).__name__}: {exc}") from exc
        except FetchRefused as exc:
            self._log_refusal(exc)
            raise

    @staticmethod
    def _log_refusal(exc: FetchRefused) -> None:
        level = logging.WARNING if exc.reason in _WARNING_REASONS else logging.INFO
        log.log(level, "fetch refused [%s] %s: %s", exc.reason, exc.url, exc.message)

    @staticmethod
    def _sniff(data: bytes, url: str) -> ImageFormat:
        try:
            return sniff_format(data)
        except LookalikeError as exc:  # NotAnImage and UnsupportedImageType alike
            raise FetchRefused("not_an_image", url, exc.message) from exc

    def _validate(self, raw: str, original: str) -> httpx.URL:
        try:
            url = httpx.URL(raw)
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise FetchRefused("bad_url", original, f"unparsable URL {raw!r}") from exc
        if url.scheme not in ("http", "https"):
            raise FetchRefused("bad_scheme", original, f"scheme {url.scheme!r} is not http or https")
        if not url.host:
            raise FetchRefused("bad_url", original, f"no host in {raw!r}")
        if url.userinfo:
            raise FetchRefused("bad_url", original, "credentials in URLs are not sent")
        url = url.copy_with(fragment=None)
        # Early, clear refusal; the connection itself is checked again by _GuardedBackend.
        self._guard.addresses(url.raw_host.decode("ascii"), _effective_port(url), original)
        return url

    def _download(
        self,
        url: str,
        *,
        referer: str | None,
        accept: str,
        max_bytes: int,
        check_prefix: Callable[[bytes], None] | None = None,
        check_robots: bool = True,
        truncate: bool = False,
    ) -> _Body:
        policy = self.policy
        deadline = _Deadline(policy.deadline_s)
        current = self._validate(url, url)
        backend = _GuardedBackend(self._guard, deadline, url)
        with httpx.Client(transport=_PinnedTransport(backend, self._ssl), trust_env=False) as client:
            for _hop in range(policy.max_redirects + 1):
                if check_robots and policy.obey_robots:
                    with deadline.paused():
                        self._check_robots(current, url)
                headers = {"User-Agent": policy.user_agent, "Accept": accept, "Accept-Encoding": "identity"}
                # Like browsers: no Referer when going from https down to http.
                if referer and not (referer.startswith("https:") and current.scheme == "http"):
                    headers["Referer"] = referer
                response = self._send(client, current, headers, deadline, url)
                try:
                    if response.status_code in _REDIRECT_STATUSES and "location" in response.headers:
                        try:
                            target = str(current.join(response.headers["location"]))
                        except httpx.InvalidURL as exc:
                            raise FetchRefused("bad_url", url, "unparsable redirect Location") from exc
                        current = self._validate(target, url)
                        continue
                    if not 200 <= response.status_code < 300:
                        raise FetchRefused(
                            "http_status", url, f"HTTP {response.status_code}", http_status=response.status_code
                        )
                    data = self._read_body(response, deadline, max_bytes, url, check_prefix, truncate)
                finally:
                    response.close()
                content_type, _, _ = response.headers.get("content-type", "").partition(";")
                return _Body(str(current), content_type.strip().lower(), response.charset_encoding, data)
        raise FetchRefused("too_many_redirects", url, f"more than {policy.max_redirects} redirects")

    def _send(
        self, client: httpx.Client, url: httpx.URL, headers: dict[str, str], deadline: _Deadline, original: str
    ) -> httpx.Response:
        """One request with retries (connection errors, timeouts before any byte, 429 and 5xx)."""
        policy = self.policy
        host = url.raw_host.decode("ascii").lower()
        for attempt in range(policy.retries + 1):
            with deadline.paused():
                self._limiter.wait(host)
            remaining = deadline.remaining()
            if remaining <= 0:
                raise FetchRefused("deadline_exceeded", original, f"no response within {policy.deadline_s:g} s")
            timeout = httpx.Timeout(remaining, connect=min(policy.connect_timeout_s, remaining))
            retry_after: float | None = None
            try:
                request = client.build_request("GET", url, headers=headers, timeout=timeout)
                response = client.send(request, stream=True, follow_redirects=False)
            except httpx.TimeoutException as exc:
                if deadline.expired():
                    raise FetchRefused(
                        "deadline_exceeded", original, f"no response within {policy.deadline_s:g} s"
                    ) from exc
                failure: FetchRefused = FetchRefused("connection_failed", original, f"{type(exc).__name__}: {exc}")
            except (httpx.TransportError, OSError) as exc:
                failure = FetchRefused("connection_failed", original, f"{type(exc).__name__}: {exc}")
                if _caused_by(exc, ssl.SSLError):
                    raise failure from exc  # a bad certificate does not get better by asking again
            else:
                status = response.status_code
                if status != 429 and status < 500:
                    return response
                retry_after = _retry_after_s(response.headers.get("retry-after"))
                response.close()
                failure = FetchRefused("http_status", original, f"HTTP {status}", http_status=status)
                if retry_after is not None and retry_after > min(policy.max_retry_after_s, deadline.remaining()):
                    raise failure  # the server asks for longer than we are willing or able to wait
            if attempt == policy.retries:
                raise failure
            delay = max(policy.backoff_s * 2**attempt, retry_after or 0.0)
            if delay >= deadline.remaining():
                raise failure
            log.info("retrying %s in %.2f s after %s", url, delay, failure.message)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _read_body(
        self,
        response: httpx.Response,
        deadline: _Deadline,
        max_bytes: int,
        url: str,
        check_prefix: Callable[[bytes], None] | None,
        truncate: bool,
    ) -> bytes:
        declared = response.headers.get("content-length", "")
        if not truncate and declared.isdigit() and int(declared) > max_bytes:
            raise FetchRefused("too_large", url, f"Content-Length {declared} is over the {max_bytes}-byte cap")
        buf = bytearray()
        sniffed = check_prefix is None
        try:
            # Accept-Encoding: identity keeps decoded size == transferred size for well-behaved servers; a
            # server that compresses anyway can expand one chunk in memory before the cap sees it.
            for chunk in response.iter_bytes():
                buf += chunk
                if len(buf) > max_bytes:
                    if truncate:
                        return bytes(buf[:max_bytes])
                    raise FetchRefused("too_large", url, f"body is over the {max_bytes}-byte cap")
                if not sniffed and len(buf) >= _SNIFF_BYTES:
                    assert check_prefix is not None
                    check_prefix(bytes(buf[:_SNIFF_BYTES]))  # stop early on 20 MB of HTML
                    sniffed = True
                if deadline.expired():
                    raise FetchRefused(
                        "deadline_exceeded", url, f"body not complete within {self.policy.deadline_s:g} s"
                    )
        except httpx.TimeoutException as exc:
            if deadline.expired():
                raise FetchRefused(
                    "deadline_exceeded", url, f"body not complete within {self.policy.deadline_s:g} s"
                ) from exc
            raise FetchRefused("connection_failed", url, f"body read timed out: {exc}") from exc
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise FetchRefused("connection_failed", url, f"body read failed: {type(exc).__name__}: {exc}") from exc
        return bytes(buf)

    # ----------------------------------------------------------------- robots.txt

    def _check_robots(self, url: httpx.URL, original: str) -> None:
        parser = self._robots_for(url)
        if isinstance(parser, FetchRefused):  # RFC 9309: unreachable robots.txt means stay away
            raise FetchRefused(
                parser.reason,
                original,
                f"robots.txt unavailable ({parser.url}): {parser.message}",
                http_status=parser.http_status,
            )
        if not parser.can_fetch(self.policy.user_agent, str(url)):
            raise FetchRefused("robots_disallowed", original, "robots.txt disallows this URL")

    def _robots_for(self, url: httpx.URL) -> urllib.robotparser.RobotFileParser | FetchRefused:
        key = (url.scheme, url.raw_host.decode("ascii").lower(), _effective_port(url))
        with self._robots_guard:
            cached = self._robots.get(key)
            if cached is not None:
                return cached
            lock = self._robots_locks.setdefault(key, threading.Lock())
        with lock:  # one robots.txt download per origin even when threads race for it
            cached = self._robots.get(key)
            if cached is None:
                cached = self._load_robots(url)
                with self._robots_guard:
                    self._robots[key] = cached
            return cached

    def _load_robots(self, url: httpx.URL) -> urllib.robotparser.RobotFileParser | FetchRefused:
        robots_url = str(url.copy_with(path="/robots.txt", query=None, fragment=None))
        parser = urllib.robotparser.RobotFileParser(robots_url)
        try:
            body = self._download(
                robots_url,
                referer=None,
                accept="text/plain",
                max_bytes=_ROBOTS_MAX_BYTES,
                check_robots=False,
                truncate=True,
            )
        except FetchRefused as exc:
            # RFC 9309: 4xx means no rules (401/403 deny all, as in the stdlib); anything else is unreachable.
            status = exc.http_status if exc.reason == "http_status" else None
            if status is None or not 400 <= status < 500 or status == 429:
                return exc
            allow = status not in (401, 403)
            parser.parse([] if allow else ["User-agent: *", "Disallow: /"])
            log.info("robots.txt for %s: HTTP %d, so %s", robots_url, status, "allow all" if allow else "deny all")
            return parser
        parser.parse(body.data.decode("utf-8", errors="replace").splitlines())
        delay = parser.crawl_delay(self.policy.user_agent)
        if delay is not None and float(delay) > self.policy.per_host_interval_s:
            self._limiter.set_interval(url.raw_host.decode("ascii").lower(), min(float(delay), _MAX_CRAWL_DELAY_S))
        return parser


def _decode_html(data: bytes, charset: str | None) -> str:
    try:
        return data.decode(charset or "utf-8", errors="replace")
    except LookupError:  # an unknown charset name
        return data.decode("utf-8", errors="replace")
