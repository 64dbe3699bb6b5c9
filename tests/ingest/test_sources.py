"""Candidate sources: a crawl of a real loopback site, local folders, ZIPs (bombs included), search, the factory."""

from __future__ import annotations

import io
import ipaddress
import socket
import threading
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from lookalike.errors import InvalidParameter, LookalikeError
from lookalike.imaging import ImageFormat
from lookalike.ingest.fetcher import Fetcher, FetchPolicy, FetchRefused
from lookalike.ingest.sources import (
    SEARCH_ENGINES,
    ArchiveRefused,
    Candidate,
    ImageUrlSource,
    LocalFolderSource,
    SearchEngineSource,
    SearchHit,
    Source,
    WebPageSource,
    ZipSource,
    extract_links,
    largest_srcset_url,
    source_from_spec,
)

FACES = Path(__file__).resolve().parents[1] / "data" / "faces"
JPEGS = [p.read_bytes() for p in sorted((FACES / "mini_gallery").rglob("*.jpg"))[:3]]


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection off loopback fails the test instead of leaving the machine."""
    real_connect = socket.create_connection

    def connect(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        if not ipaddress.ip_address(str(address[0])).is_loopback:
            raise AssertionError(f"test tried to connect to {address}")
        return real_connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", connect)


# --------------------------------------------------------------------------- the site

INDEX = """<!doctype html><html><head>
<meta property="og:image" content="/img/og.jpg">
<title>Members</title></head><body>
<img src="img/a.jpg" alt="a"><img src="img/a.jpg" alt="a again">
<img src="img/small.jpg" srcset="img/small.jpg 100w, img/large.jpg 800w, img/medium.jpg 400w">
<picture><source srcset="img/b.webp 1x, img/b2x.webp 2x"><img src="img/b.jpg"></picture>
<img src="data:image/png;base64,iVBORw0KGgo=">
<a href="img/c.jpeg">full size</a>
<a href="/gallery/photo.PNG?size=big">another</a>
<a href="page1.html">next</a> <a href="/page1.html#top">next again</a>
<a href="http://127.0.0.1:{other}/ext.html">a friend's site</a>
<a href="/private/hidden.html">members only</a>
<a href="/files/profile.pdf">pdf</a> <a href="mailto:fan@example.org">mail</a> <a href="javascript:void(0)">js</a>
</body></html>"""
PAGE1 = (
    '<html><body><img src="/img/p1.jpg"><a href="/page2.html">deeper</a><a href="/index.html">home</a></body></html>'
)
PAGE2 = '<html><body><img src="/img/p2.jpg"></body></html>'
HIDDEN = '<html><body><img src="/img/secret.jpg"></body></html>'
EXT = '<html><body><img src="/img/ext.jpg"></body></html>'

DEPTH0 = [
    "/img/og.jpg",
    "/img/a.jpg",
    "/img/small.jpg",
    "/img/large.jpg",
    "/img/b2x.webp",
    "/img/b.jpg",
    "/img/c.jpeg",
    "/gallery/photo.PNG?size=big",
]


@dataclass
class Site:
    server: ThreadingHTTPServer
    other_port: int = 0
    hits: Counter[str] = field(default_factory=Counter)
    referers: dict[str, str] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _serve() -> Site:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            site.hits[path] += 1
            site.referers[path] = self.headers.get("Referer", "")
            pages = {
                "/index.html": INDEX.replace("{other}", str(site.other_port)),
                "/page1.html": PAGE1,
                "/page2.html": PAGE2,
                "/private/hidden.html": HIDDEN,
                "/ext.html": EXT,
            }
            if path == "/robots.txt":
                self.reply(b"User-agent: *\nDisallow: /private/\n", "text/plain")
            elif path in pages:
                self.reply(pages[path].encode(), "text/html; charset=utf-8")
            elif path.startswith(("/img/", "/gallery/")):
                self.reply(JPEGS[len(path) % len(JPEGS)], "image/jpeg")
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        def reply(self, body: bytes, content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    site = Site(server)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return site


@pytest.fixture
def sites() -> Iterator[tuple[Site, Site]]:
    site, other = _serve(), _serve()
    site.other_port = other.port
    yield site, other
    for s in (site, other):
        s.server.shutdown()
        s.server.server_close()


def fetcher_for(*sites: Site) -> Fetcher:
    # Both servers allowlisted: staying on the site must come from the crawler, not from the SSRF guard.
    allow = frozenset(f"127.0.0.1:{s.port}" for s in sites)
    return Fetcher(FetchPolicy(per_host_interval_s=0.0, deadline_s=5.0, allow_private=allow))


def paths(candidates: Iterable[Candidate]) -> list[str]:
    out = []
    for c in candidates:
        parts = urlsplit(c.url)
        out.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return out


# --------------------------------------------------------------------------- crawling


def test_crawl_depth_1_finds_linked_pages_images_and_stays_on_site(sites: tuple[Site, Site]) -> None:
    site, other = sites
    fetcher = fetcher_for(site, other)
    found = list(WebPageSource(site.url("/index.html"), depth=1).candidates(fetcher))
    assert paths(found) == [*DEPTH0, "/img/p1.jpg"]
    assert all(c.data is None for c in found)
    assert {c.page_url for c in found} == {site.url("/index.html"), site.url("/page1.html")}
    assert site.hits["/page1.html"] == 1  # the "#top" link is the same page
    assert site.hits["/page2.html"] == 0  # depth 2: not crawled
    assert site.hits["/private/hidden.html"] == 0  # robots.txt
    assert site.hits["/files/profile.pdf"] == 0
    assert sum(other.hits.values()) == 0  # the external link was never followed
    assert not any(site.hits[p] for p in DEPTH0)  # a source lists; it does not download

    # Every candidate downloads as a real picture, with its page as Referer.
    for c in found:
        image = fetcher.fetch_image(c.url, referer=c.page_url)
        assert image.format is ImageFormat.JPEG
        assert site.referers[urlsplit(c.url).path] == c.page_url


def test_crawl_depth_0_and_2(sites: tuple[Site, Site]) -> None:
    site, other = sites
    fetcher = fetcher_for(site, other)
    assert paths(WebPageSource(site.url("/index.html"), depth=0).candidates(fetcher)) == DEPTH0
    assert site.hits["/page1.html"] == 0
    deep = paths(WebPageSource(site.url("/index.html"), depth=2).candidates(fetcher))
    assert deep == [*DEPTH0, "/img/p1.jpg", "/img/p2.jpg"]
    assert sum(other.hits.values()) == 0


def test_crawl_caps(sites: tuple[Site, Site]) -> None:
    site, _ = sites
    fetcher = fetcher_for(site)
    assert len(list(WebPageSource(site.url("/index.html"), max_images=3).candidates(fetcher))) == 3
    one_page = paths(WebPageSource(site.url("/index.html"), depth=3, max_pages=1).candidates(fetcher))
    assert one_page == DEPTH0


def test_crawl_start_page_failure_is_raised(sites: tuple[Site, Site]) -> None:
    site, _ = sites
    with pytest.raises(FetchRefused) as info:
        list(WebPageSource(site.url("/missing.html")).candidates(fetcher_for(site)))
    assert info.value.reason == "http_status" and info.value.http_status == 404


def test_image_url_source(sites: tuple[Site, Site]) -> None:
    site, _ = sites
    assert list(ImageUrlSource(site.url("/img/a.jpg")).candidates(fetcher_for(site))) == [
        Candidate(site.url("/img/a.jpg"))
    ]


@pytest.mark.parametrize(
    ("srcset", "expected"),
    [
        ("a.jpg 1x, b.jpg 2x", "b.jpg"),
        ("a.jpg 480w, b.jpg 1024w, c.jpg 800w", "b.jpg"),
        ("only.jpg", "only.jpg"),
        # commas inside a URL do not split it
        (
            "https://cdn.example/c_fill,w_100/x.jpg 1x, https://cdn.example/c_fill,w_800/x.jpg 2x",
            "https://cdn.example/c_fill,w_800/x.jpg",
        ),
        ("a.jpg 1.5x,b.jpg 3x,c.jpg", "b.jpg"),
        ("", None),
    ],
)
def test_largest_srcset_url(srcset: str, expected: str | None) -> None:
    assert largest_srcset_url(srcset) == expected


def test_extract_links_resolves_against_base() -> None:
    html = '<base href="https://cdn.example/m/"><img src="a.jpg"><a href="../p.html">p</a><a href="x.webp">x</a>'
    images, pages = extract_links(html, "https://site.example/dir/index.html")
    assert images == ["https://cdn.example/m/a.jpg", "https://cdn.example/m/x.webp"]
    assert pages == ["https://cdn.example/p.html"]


# --------------------------------------------------------------------------- local folders


def test_local_folder_source(tmp_path: Path) -> None:
    (tmp_path / "b.jpg").write_bytes(JPEGS[1])
    (tmp_path / "a.JPG").write_bytes(JPEGS[0])
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / ".hidden.jpg").write_bytes(JPEGS[2])
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.jpg").write_bytes(JPEGS[2])
    found = list(LocalFolderSource(tmp_path).candidates(fetcher_for()))
    assert [Path(urlsplit(c.url).path).name for c in found] == ["a.JPG", "b.jpg"]
    assert [c.data for c in found] == [JPEGS[0], JPEGS[1]]
    assert all(c.url.startswith("file://") and c.page_url is None for c in found)
    with pytest.raises(InvalidParameter):
        LocalFolderSource(tmp_path / "nope")


# --------------------------------------------------------------------------- ZIP archives


def make_zip(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as archive:
        for name, data in entries.items():
            if name.endswith("/"):
                archive.mkdir(name.rstrip("/"))
            else:
                archive.writestr(zipfile.ZipInfo(name), data, compression)
    return buf.getvalue()


def test_zip_source_yields_images_and_ignores_traversal_names(tmp_path: Path) -> None:
    data = make_zip(
        {
            "alice/": b"",
            "alice/1.jpg": JPEGS[0],
            "bob/2.png": JPEGS[1],
            "readme.txt": b"hello",
            "../evil.jpg": JPEGS[2],
            "/etc/abs.jpg": JPEGS[2],
            "a/../../x.jpg": JPEGS[2],
            "win\\evil.jpg": JPEGS[2],
            "C:/evil.jpg": JPEGS[2],
            "__MACOSX/alice/._1.jpg": b"\x00\x05\x16\x07",
        }
    )
    names = [zi.filename for zi in zipfile.ZipFile(io.BytesIO(data)).infolist()]
    assert "../evil.jpg" in names and "/etc/abs.jpg" in names  # the archive really carries them
    found = list(ZipSource(data, name="photos.zip").candidates(fetcher_for()))
    assert [c.url for c in found] == ["zip:photos.zip#alice/1.jpg", "zip:photos.zip#bob/2.png"]
    assert [c.data for c in found] == [JPEGS[0], JPEGS[1]]

    path = tmp_path / "photos.zip"
    path.write_bytes(data)
    from_file = list(ZipSource(path).candidates(fetcher_for()))
    assert [c.url for c in from_file] == [
        f"{path.resolve().as_uri()}#alice/1.jpg",
        f"{path.resolve().as_uri()}#bob/2.png",
    ]


def test_zip_bomb_with_many_entries_is_refused() -> None:
    data = make_zip({f"{i}.jpg": b"" for i in range(2001)}, zipfile.ZIP_STORED)
    with pytest.raises(ArchiveRefused) as info:
        list(ZipSource(data).candidates(fetcher_for()))
    assert info.value.reason == "too_many_entries"


def test_zip_bomb_with_a_huge_member_is_refused_before_inflating() -> None:
    data = make_zip({"ok.jpg": JPEGS[0], "big.jpg": b"\0" * (30 * 1024 * 1024)})
    assert len(data) < 200_000  # 30 MB of zeros deflates to almost nothing
    with pytest.raises(ArchiveRefused) as info:
        list(ZipSource(data).candidates(fetcher_for()))
    assert info.value.reason == "entry_too_large" and info.value.status == 413


def test_zip_total_size_cap() -> None:
    data = make_zip({f"{i}.jpg": bytes(400_000) for i in range(3)})
    with pytest.raises(ArchiveRefused) as info:
        list(ZipSource(data, max_total_bytes=1_000_000).candidates(fetcher_for()))
    assert info.value.reason == "total_too_large"


def test_not_a_zip() -> None:
    with pytest.raises(ArchiveRefused) as info:
        list(ZipSource(b"this is not a zip").candidates(fetcher_for()))
    assert info.value.reason == "bad_zip"


# --------------------------------------------------------------------------- search and the factory


class FakeEngine:
    name = "fake"

    def search(self, query: str, *, limit: int) -> Iterable[SearchHit]:
        for i in range(limit + 5):  # engines may return more than asked; the source caps
            yield SearchHit(f"https://images.example/{query}/{i}.jpg", f"https://news.example/{i}")


def test_search_is_off_by_default() -> None:
    assert SEARCH_ENGINES == {}
    with pytest.raises(LookalikeError) as info:
        source_from_spec("search", "some member")
    assert info.value.code == "search_not_configured"


def test_registered_search_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SEARCH_ENGINES, "fake", FakeEngine)
    source = source_from_spec("search", "alice", limit="3")
    assert isinstance(source, SearchEngineSource) and source.kind == "search"
    found = list(source.candidates(fetcher_for()))  # nothing is fetched: the fake engine never calls out
    assert [c.url for c in found] == [f"https://images.example/alice/{i}.jpg" for i in range(3)]
    assert found[0].page_url == "https://news.example/0"
    with pytest.raises(InvalidParameter):
        source_from_spec("search", "alice", engine="other")


def test_source_from_spec(tmp_path: Path) -> None:
    assert isinstance(source_from_spec("image_url", "https://x.example/a.jpg"), ImageUrlSource)
    web = source_from_spec("web_page", "https://x.example/", depth="2", max_pages=10)
    assert isinstance(web, WebPageSource) and (web.depth, web.max_pages, web.max_images) == (2, 10, 200)
    assert isinstance(source_from_spec("folder", str(tmp_path)), LocalFolderSource)
    archive = tmp_path / "a.zip"
    archive.write_bytes(make_zip({"a.jpg": JPEGS[0]}))
    assert isinstance(source_from_spec("zip", str(archive), max_entries=5), ZipSource)
    bad: list[tuple[str, str, dict[str, object]]] = [
        ("ftp", "x", {}),
        ("web_page", "https://x.example/", {"depht": 2}),
        ("web_page", "https://x.example/", {"depth": "deep"}),
        ("web_page", "https://x.example/", {"depth": -1}),
        ("folder", str(tmp_path / "missing"), {}),
    ]
    for kind, value, options in bad:
        with pytest.raises(InvalidParameter):
            source_from_spec(kind, value, **options)


def test_sources_satisfy_the_protocol(tmp_path: Path) -> None:
    sources: list[Source] = [  # checked by mypy as much as by pytest
        ImageUrlSource("https://x.example/a.jpg"),
        WebPageSource("https://x.example/"),
        LocalFolderSource(tmp_path),
        ZipSource(b""),
        SearchEngineSource("q", engine=FakeEngine()),
    ]
    assert [s.kind for s in sources] == ["image_url", "web_page", "folder", "zip", "search"]
