"""Where candidate member photos come from: an image URL, a crawled web page, a local folder, a ZIP, a search.

A source only says where pictures may be; it never decides that bytes are a picture. Web candidates carry
no data (the caller downloads them with `Fetcher.fetch_image(c.url, referer=c.page_url)`, which sniffs the
bytes); local candidates carry their bytes, still unsniffed.
"""

from __future__ import annotations

import io
import logging
import posixpath
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from itertools import islice
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, urldefrag, urljoin, urlsplit

from lookalike.errors import InvalidParameter, LookalikeError
from lookalike.ingest.fetcher import Fetcher, FetchRefused

__all__ = [
    "SEARCH_ENGINES",
    "ArchiveRefused",
    "Candidate",
    "ImageUrlSource",
    "LocalFolderSource",
    "SearchEngine",
    "SearchEngineSource",
    "SearchHit",
    "Source",
    "WebPageSource",
    "ZipSource",
    "extract_links",
    "largest_srcset_url",
    "source_from_spec",
]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif")
# Links with these suffixes are never HTML pages; following them would only cost requests.
# fmt: off
_NOT_PAGE_SUFFIXES = frozenset({
    ".pdf", ".zip", ".gz", ".tgz", ".rar", ".7z", ".tar", ".mp4", ".m4v", ".mov", ".avi", ".webm", ".mp3", ".wav",
    ".ogg", ".css", ".js", ".json", ".xml", ".txt", ".csv", ".ico", ".svg", ".gif", ".bmp", ".tif", ".tiff", ".avif",
    ".woff", ".woff2", ".ttf", ".otf", ".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx", ".exe", ".dmg", ".apk",
})
# fmt: on
_OG_IMAGE_KEYS = frozenset({"og:image", "og:image:url", "og:image:secure_url", "twitter:image", "twitter:image:src"})
_MAX_FILE_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Candidate:
    url: str  # http(s) URL, or a file:// URI (a "#member" fragment names a ZIP member)
    page_url: str | None = None  # provenance: the page it was found on
    data: bytes | None = None  # already loaded for local sources


class Source(Protocol):
    kind: str

    def candidates(self, fetcher: Fetcher) -> Iterator[Candidate]: ...


class ArchiveRefused(LookalikeError):
    """A ZIP that is unreadable or looks like a bomb; `reason` is stable."""

    code = "archive_refused"
    status = 413

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, status=422 if reason == "bad_zip" else None)
        self.reason = reason


# --------------------------------------------------------------------------- single URL


class ImageUrlSource:
    kind = "image_url"

    def __init__(self, url: str) -> None:
        self.url = url

    def candidates(self, fetcher: Fetcher) -> Iterator[Candidate]:
        yield Candidate(self.url)


# --------------------------------------------------------------------------- HTML extraction


def _parse_srcset(value: str) -> list[tuple[str, str]]:
    """(url, descriptor) pairs, following the HTML srcset grammar closely enough for real pages.

    Splitting on "," alone breaks on URLs that contain commas; a URL is a run of non-space characters.
    """
    out: list[tuple[str, str]] = []
    pos, n = 0, len(value)
    while pos < n:
        while pos < n and (value[pos].isspace() or value[pos] == ","):
            pos += 1
        start = pos
        while pos < n and not value[pos].isspace():
            pos += 1
        url = value[start:pos]
        if not url:
            break
        if url.endswith(","):
            out.append((url.rstrip(","), ""))
            continue
        start, depth = pos, 0
        while pos < n and not (value[pos] == "," and depth <= 0):
            depth += {"(": 1, ")": -1}.get(value[pos], 0)
            pos += 1
        out.append((url, value[start:pos].strip()))
        pos += 1
    return out


def largest_srcset_url(value: str) -> str | None:
    """The srcset candidate with the largest width ("800w"), else the largest density ("2x")."""
    best: str | None = None
    best_key = (-1, -1.0)
    for url, descriptor in _parse_srcset(value):
        key = (0, 1.0)  # no descriptor means 1x
        token = descriptor.split()[0].lower() if descriptor else ""
        try:
            if token.endswith("w"):
                key = (1, float(token[:-1]))
            elif token.endswith("x"):
                key = (0, float(token[:-1]))
        except ValueError:
            pass
        if key > best_key:
            best, best_key = url, key
    return best


class _Extractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.images: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): v for k, v in attrs if v is not None}
        if tag == "base" and self.base is None and "href" in a:
            self.base = a["href"]
        elif tag == "img":
            # data-src/data-srcset: lazy-loading galleries keep the real picture there.
            for key in ("src", "data-src"):
                if key in a:
                    self.images.append(a[key])
            for key in ("srcset", "data-srcset"):
                self._add_srcset(a.get(key))
        elif tag == "source":  # <picture><source srcset>; <video>/<audio> sources carry src, ignored
            self._add_srcset(a.get("srcset"))
            self._add_srcset(a.get("data-srcset"))
        elif tag in ("a", "area") and "href" in a:
            self.links.append(a["href"])
        elif tag == "meta" and "content" in a:
            key = (a.get("property") or a.get("name") or "").lower()
            if key in _OG_IMAGE_KEYS:
                self.images.append(a["content"])
        elif tag == "link" and "href" in a and "image_src" in (a.get("rel") or "").lower().split():
            self.images.append(a["href"])

    def _add_srcset(self, value: str | None) -> None:
        if value:
            url = largest_srcset_url(value)
            if url:
                self.images.append(url)


def _absolute(base: str, raw: str) -> str | None:
    """Resolve against the page; None for anything that is not a plain http(s) URL (data:, javascript:, ...)."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        url = urldefrag(urljoin(base, raw)).url
        parts = urlsplit(url)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return url


def _looks_like_image(url: str) -> bool:
    return urlsplit(url).path.lower().endswith(IMAGE_SUFFIXES)


def extract_links(html: str, page_url: str) -> tuple[list[str], list[str]]:
    """(image URLs, page URLs) found in `html`, absolute, deduplicated, in document order."""
    parser = _Extractor()
    parser.feed(html)
    parser.close()
    base = page_url
    if parser.base:
        base = _absolute(page_url, parser.base) or page_url
    images: dict[str, None] = {}
    pages: dict[str, None] = {}
    for raw in parser.images:
        url = _absolute(base, raw)
        if url:
            images[url] = None
    for raw in parser.links:
        url = _absolute(base, raw)
        if url is None:
            continue
        if _looks_like_image(url):
            images[url] = None
        else:
            pages[url] = None
    return list(images), list(pages)


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


# --------------------------------------------------------------------------- web pages


class WebPageSource:
    """Pictures on a page and on the pages of the same site (scheme, host and port) it links to.

    Breadth-first up to `depth` link hops (0: the page alone). Pictures may live on another host (a CDN);
    pages never do. The start page's failure is raised; later pages that fail are logged and skipped.
    """

    kind = "web_page"

    def __init__(self, url: str, *, depth: int = 1, max_pages: int = 50, max_images: int = 200) -> None:
        if depth < 0 or max_pages < 1 or max_images < 1:
            raise InvalidParameter("depth must be >= 0, max_pages and max_images >= 1")
        self.url = url
        self.depth = depth
        self.max_pages = max_pages
        self.max_images = max_images

    def candidates(self, fetcher: Fetcher) -> Iterator[Candidate]:
        start = urldefrag(self.url).url
        origins = {_origin(start)}
        seen_pages = {start}
        seen_images: set[str] = set()
        queue: deque[tuple[str, int]] = deque([(start, 0)])
        fetched = 0
        while queue and fetched < self.max_pages:
            page_url, depth = queue.popleft()
            fetched += 1
            try:
                page = fetcher.fetch_page(page_url)
            except FetchRefused:
                if page_url == start:
                    raise
                continue  # the fetcher logged why
            if page_url == start:
                origins.add(_origin(page.final_url))  # e.g. http -> https on the same host
            elif _origin(page.final_url) not in origins:
                log.info("crawl: %s redirected off-site to %s; skipped", page_url, page.final_url)
                continue
            seen_pages.add(page.final_url)
            images, links = extract_links(page.html, page.final_url)
            for image in images:
                if image not in seen_images:
                    seen_images.add(image)
                    yield Candidate(image, page.final_url)
                    if len(seen_images) >= self.max_images:
                        return
            if depth >= self.depth:
                continue
            for link in links:
                suffix = posixpath.splitext(urlsplit(link).path)[1].lower()
                if link in seen_pages or _origin(link) not in origins or suffix in _NOT_PAGE_SUFFIXES:
                    continue
                seen_pages.add(link)
                queue.append((link, depth + 1))


# --------------------------------------------------------------------------- local files


class LocalFolderSource:
    """Image files (by suffix) directly in one folder, sorted by name; hidden files skipped."""

    kind = "folder"

    def __init__(self, path: str | Path, *, max_bytes: int = _MAX_FILE_BYTES) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise InvalidParameter(f"{self.path} is not a folder")
        self.max_bytes = max_bytes

    def candidates(self, fetcher: Fetcher) -> Iterator[Candidate]:
        for path in sorted(self.path.iterdir()):
            if path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                continue
            if path.stat().st_size > self.max_bytes:
                log.warning("skipping %s: over %d bytes", path, self.max_bytes)
                continue
            yield Candidate(path.resolve().as_uri(), None, path.read_bytes())


def _unsafe_member_name(name: str) -> bool:
    """Names that would escape a folder if anyone ever extracted them, or that lie about their path."""
    if not name or "\x00" in name or "\\" in name or name.startswith("/"):
        return True
    first = name.split("/", 1)[0]
    if len(first) >= 2 and first[1] == ":":  # a drive letter, "C:..."
        return True
    return any(part == ".." for part in name.split("/"))


class ZipSource:
    """Image members of a ZIP archive, sorted by name.

    Bomb guards, all checked on the central directory before any member is inflated: the entry count, each
    image's declared size, and the total declared size. Reads are capped as well, in case a header lies.
    Directories, encrypted members, macOS resource forks and path-traversal names are skipped.
    """

    kind = "zip"

    def __init__(
        self,
        source: str | Path | bytes,
        *,
        name: str = "upload.zip",
        max_entries: int = 2000,
        max_entry_bytes: int = _MAX_FILE_BYTES,
        max_total_bytes: int = 512 * 1024 * 1024,
    ) -> None:
        self.source = source if isinstance(source, bytes) else Path(source)
        if isinstance(self.source, Path) and not self.source.is_file():
            raise InvalidParameter(f"{self.source} is not a file")
        self.name = name
        self.max_entries = max_entries
        self.max_entry_bytes = max_entry_bytes
        self.max_total_bytes = max_total_bytes

    def _base_uri(self) -> str:
        return self.source.resolve().as_uri() if isinstance(self.source, Path) else f"zip:{quote(self.name)}"

    def _members(self, archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
        infos = archive.infolist()
        if len(infos) > self.max_entries:
            raise ArchiveRefused("too_many_entries", f"{len(infos)} entries, at most {self.max_entries}")
        members: list[zipfile.ZipInfo] = []
        total = 0
        for info in infos:
            name = info.filename
            if info.is_dir() or not name.lower().endswith(IMAGE_SUFFIXES):
                continue
            if _unsafe_member_name(name):
                log.warning("zip: ignoring member with an unsafe name %r", name)
                continue
            base = posixpath.basename(name)
            if name.startswith("__MACOSX/") or base.startswith("."):
                continue
            if info.flag_bits & 0x1:
                log.warning("zip: ignoring encrypted member %r", name)
                continue
            if info.file_size > self.max_entry_bytes:
                raise ArchiveRefused(
                    "entry_too_large", f"{name!r} inflates to {info.file_size} bytes (at most {self.max_entry_bytes})"
                )
            total += info.file_size
            if total > self.max_total_bytes:
                raise ArchiveRefused("total_too_large", f"the pictures inflate to over {self.max_total_bytes} bytes")
            members.append(info)
        return sorted(members, key=lambda i: i.filename)

    def candidates(self, fetcher: Fetcher) -> Iterator[Candidate]:
        try:
            archive = zipfile.ZipFile(io.BytesIO(self.source) if isinstance(self.source, bytes) else self.source)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise ArchiveRefused("bad_zip", f"not a readable ZIP archive ({exc})") from exc
        base = self._base_uri()
        with archive:
            members = self._members(archive)
            read_total = 0
            for info in members:
                try:
                    with archive.open(info) as member:
                        data = member.read(self.max_entry_bytes + 1)
                except Exception as exc:  # BadZipFile (CRC), zlib.error, NotImplementedError (method), ...
                    log.warning("zip: skipping unreadable member %r (%s)", info.filename, type(exc).__name__)
                    continue
                read_total += len(data)
                if len(data) > self.max_entry_bytes:
                    raise ArchiveRefused("entry_too_large", f"{info.filename!r} is over {self.max_entry_bytes} bytes")
                if read_total > self.max_total_bytes:
                    raise ArchiveRefused("total_too_large", f"the pictures inflate past {self.max_total_bytes} bytes")
                yield Candidate(f"{base}#{quote(info.filename)}", None, data)


# --------------------------------------------------------------------------- search engines


@dataclass(frozen=True, slots=True)
class SearchHit:
    image_url: str
    page_url: str | None = None  # the page showing the picture, when the engine says


class SearchEngine(Protocol):
    """A pluggable image search: query in, image URLs out. None ships; scraping a search engine's result
    pages is against their terms and is not done here.

    To plug one in, wrap an official API (its key read from the environment by the factory) and register
    a factory at start-up::

        class BingImages:
            name = "bing"
            def __init__(self) -> None: self._key = os.environ["BING_SEARCH_KEY"]
            def search(self, query: str, *, limit: int) -> Iterable[SearchHit]: ...  # call the API

        SEARCH_ENGINES["bing"] = BingImages

    The hits are downloaded like any other candidate: SSRF guard, robots.txt, rate limit and sniffing apply.
    """

    name: str

    def search(self, query: str, *, limit: int) -> Iterable[SearchHit]: ...


# Empty on purpose: search is off until a deployment registers an engine.
SEARCH_ENGINES: dict[str, Callable[[], SearchEngine]] = {}


class SearchEngineSource:
    kind = "search"

    def __init__(self, query: str, *, engine: SearchEngine, limit: int = 50) -> None:
        if not query.strip() or limit < 1:
            raise InvalidParameter("a search needs a query and a limit >= 1")
        self.query = query
        self.engine = engine
        self.limit = limit

    def candidates(self, fetcher: Fetcher) -> Iterator[Candidate]:
        for hit in islice(self.engine.search(self.query, limit=self.limit), self.limit):
            yield Candidate(hit.image_url, hit.page_url)


def _search_engine(name: object) -> SearchEngine:
    if not SEARCH_ENGINES:
        raise LookalikeError(
            "Image search is not configured: no search engine is registered (see lookalike.ingest.sources).",
            code="search_not_configured",
            status=501,
        )
    if name is None:
        if len(SEARCH_ENGINES) > 1:
            raise InvalidParameter(f"several search engines are registered; pick one of {sorted(SEARCH_ENGINES)}")
        name = next(iter(SEARCH_ENGINES))
    factory = SEARCH_ENGINES.get(str(name))
    if factory is None:
        raise InvalidParameter(f"unknown search engine {name!r}; registered: {sorted(SEARCH_ENGINES)}")
    return factory()


# --------------------------------------------------------------------------- factory


def _int_option(options: dict[str, object], key: str, default: int) -> int:
    value = options.pop(key, default)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidParameter(f"option {key} must be an integer")
    try:
        return int(value)
    except ValueError as exc:
        raise InvalidParameter(f"option {key} must be an integer, not {value!r}") from exc


def source_from_spec(kind: str, value: str, **options: object) -> Source:
    """Build a source from a kind and its value (URL, path or query); options are per kind, ints may be strings.

    image_url: URL. web_page: URL; depth, max_pages, max_images. folder: path; max_bytes. zip: path;
    max_entries, max_entry_bytes, max_total_bytes. search: query; engine (a registered name), limit.
    """
    opts = dict(options)
    source: Source
    if kind == "image_url":
        source = ImageUrlSource(value)
    elif kind == "web_page":
        source = WebPageSource(
            value,
            depth=_int_option(opts, "depth", 1),
            max_pages=_int_option(opts, "max_pages", 50),
            max_images=_int_option(opts, "max_images", 200),
        )
    elif kind == "folder":
        source = LocalFolderSource(value, max_bytes=_int_option(opts, "max_bytes", _MAX_FILE_BYTES))
    elif kind == "zip":
        source = ZipSource(
            value,
            max_entries=_int_option(opts, "max_entries", 2000),
            max_entry_bytes=_int_option(opts, "max_entry_bytes", _MAX_FILE_BYTES),
            max_total_bytes=_int_option(opts, "max_total_bytes", 512 * 1024 * 1024),
        )
    elif kind == "search":
        engine = _search_engine(opts.pop("engine", None))
        source = SearchEngineSource(value, engine=engine, limit=_int_option(opts, "limit", 50))
    else:
        raise InvalidParameter(f"unknown source kind {kind!r}; use image_url, web_page, folder, zip or search")
    if opts:
        raise InvalidParameter(f"unknown option(s) for {kind}: {', '.join(sorted(opts))}")
    return source
