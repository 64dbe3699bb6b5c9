"""A real member-photo website on loopback for the scrape tests: a page per member, dirty on purpose.

Each member page shows the member's 7 photos (demo gallery + probes), a collage that puts the member's face
between two strangers (a group photo whose member face should be kept), and 3 photos of someone else (strangers,
LFW identities, other members); two pages also show a group photo of none of the members. One page also links
hostile pictures (oversize, slow drip, a redirect to a loopback port that is not allowlisted, a PDF, HTML
dressed as a JPEG, a robots-disallowed path), each of which the fetcher must refuse.

`truth[path]` says what a human would say of each picture a page shows: "right" (the member), "wrong" (someone
else or nobody in the gallery) or the refusal reason expected for the hostile ones.
"""

from __future__ import annotations

import contextlib
import html
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
from loopback import LoopbackHandler, start, stop

REPO = Path(__file__).resolve().parents[1]
FACES = REPO / "tests" / "data" / "faces"
DEMO = REPO / "demo" / "gallery"
MEMBERS = ["hori_miona", "ikoma_rina", "nibu_akari", "saito_asuka", "shiraishi_mai"]
NAMES = {
    "hori_miona": "Miona Hori",
    "ikoma_rina": "Rina Ikoma",
    "nibu_akari": "Akari Nibu",
    "saito_asuka": "Asuka Saito",
    "shiraishi_mai": "Mai Shiraishi",
}
# The member whose page also links every hostile picture.
HOSTILE_PAGE = "saito_asuka"
# What each hostile path must be refused for (the FetchRefused reason).
HOSTILE = {
    "/files/huge.jpg": "too_large",
    "/files/drip.jpg": "deadline_exceeded",
    "/files/moved.jpg": "ssrf_blocked",
    "/files/brochure.pdf": "not_an_image",
    "/files/disguised.jpg": "not_an_image",
    "/private/backstage.jpg": "robots_disallowed",
}
ROBOTS = b"User-agent: *\nDisallow: /private/\n"


def right_photos(member: str) -> list[Path]:
    """The member's own photos: the 5 of the demo gallery and the 2 probes."""
    return sorted((DEMO / member).glob("*.jpg")) + sorted((FACES / "probes" / member).glob("*.jpg"))


def _strangers() -> list[Path]:
    return sorted((FACES / "strangers").rglob("*.jpg"))


def _lfw() -> list[Path]:
    return sorted((FACES / "mini_gallery").rglob("*.jpg"))


def wrong_photos(member: str) -> list[Path]:
    """3 photos of other people per member: a stranger, an LFW identity and another member of the group."""
    i = MEMBERS.index(member)
    other = MEMBERS[(i + 1) % len(MEMBERS)]
    return [_strangers()[2 * i], _lfw()[3 * i + 1], sorted((DEMO / other).glob("*.jpg"))[i]]


def group_photos(member: str) -> list[Path]:
    """Group photos of none of the members (wrong photos too) on two of the pages."""
    return {"hori_miona": [FACES / "group" / "02.jpg"], "nibu_akari": [FACES / "group" / "07.jpg"]}.get(member, [])


def collage(member: str) -> bytes:
    """A JPEG of the member's face between two (Western) strangers: a photo where the member should be kept."""
    import cv2

    def tile(path: Path) -> np.ndarray[Any, np.dtype[np.uint8]]:
        image = cv2.imread(str(path))
        assert image is not None, path
        height = 360
        width = round(image.shape[1] * height / image.shape[0])
        return np.asarray(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), dtype=np.uint8)

    left = FACES / "strangers" / "meryl_streep" / "07.jpg"
    right = FACES / "mini_gallery" / "tiger_woods" / "05.jpg"
    middle = FACES / "probes" / member / "11.jpg"
    row = np.hstack([tile(left), tile(middle), tile(right)])
    ok, data = cv2.imencode(".jpg", row, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return bytes(data.tobytes())


@dataclass
class Site:
    """The server and what it serves: path -> (content type, bytes) for plain files."""

    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    truth: dict[str, str] = field(default_factory=dict)  # image path -> right | wrong | a refusal reason
    owner: dict[str, list[str]] = field(default_factory=dict)  # image path -> members whose page shows it
    hits: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None
    decoy: Site | None = None  # another loopback server, not allowlisted: the redirect's target

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def page_url(self, member: str) -> str:
        return self.url(f"/members/{member}/")

    def count(self, path: str) -> None:
        with self.lock:
            self.hits[path] += 1

    def expected(self, member: str, kind: str) -> list[str]:
        """The image paths of `member`'s page that are `kind` (right, wrong, or hostile: any refusal)."""
        paths = [p for p, owners in self.owner.items() if member in owners]
        if kind == "hostile":
            return [p for p in paths if self.truth[p] not in ("right", "wrong")]
        return [p for p in paths if self.truth[p] == kind]


class _Handler(LoopbackHandler):
    site: Site

    def route(self, path: str, query: str) -> None:
        self.site.count(path)
        self.serve(path)

    def serve(self, path: str) -> None:
        site = self.site
        if path == "/robots.txt":
            self.reply(200, ROBOTS, "text/plain")
        elif path in site.files:
            content_type, body = site.files[path]
            self.reply(200, body, content_type)
        elif path == "/files/huge.jpg":  # a JPEG head, then far more than the cap, no Content-Length
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.end_headers()
            self.wfile.write(site.files["/members/hori_miona/photo-01.jpg"][1][:4096])
            for _ in range(64):
                self.wfile.write(b"\x00" * 65536)
        elif path == "/files/drip.jpg":  # a byte every 0.25 s: only the download deadline stops it
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"\xff\xd8\xff")
            for _ in range(120):
                time.sleep(0.25)
                self.wfile.write(b"\x00")
                self.wfile.flush()
        elif path == "/files/moved.jpg":  # loopback, but another port: the guard must refuse the hop
            assert site.decoy is not None
            location = f"{site.decoy.base}/members/hori_miona/photo-01.jpg"
            self.reply(302, b"", "text/plain", Location=location)
        elif path == "/files/brochure.pdf":
            self.reply(200, b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n" * 20, "image/jpeg")
        elif path == "/files/disguised.jpg":
            body = b"<!doctype html><html><body><p>Photo gallery moved</p></body></html>" * 80
            self.reply(200, body, "image/jpeg")
        elif path.startswith("/private/"):
            self.reply(200, site.files["/members/hori_miona/photo-01.jpg"][1], "image/jpeg")
        else:
            self.reply(404, b"not found", "text/plain")


def _page(member: str, images: list[str]) -> bytes:
    tags = "\n".join(f'<figure><img src="{html.escape(p)}" alt="photo"></figure>' for p in images)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{NAMES[member]}</title></head>"
        f"<body><h1>{NAMES[member]}</h1>{tags}<p><a href='/'>all members</a></p></body></html>"
    ).encode()


def build_site(*, hostile: bool = True) -> Site:
    """The pages and files (not serving yet)."""
    site = Site()

    def add(member: str, path: str, body: bytes, kind: str, content_type: str = "image/jpeg") -> str:
        site.files.setdefault(path, (content_type, body))
        site.truth[path] = kind
        site.owner.setdefault(path, []).append(member)
        return path

    pages: dict[str, list[str]] = {}
    for member in MEMBERS:
        shown: list[str] = []
        for n, photo in enumerate(right_photos(member), 1):
            shown.append(add(member, f"/members/{member}/photo-{n:02d}.jpg", photo.read_bytes(), "right"))
        shown.append(add(member, f"/members/{member}/with-friends.jpg", collage(member), "right"))
        for photo in wrong_photos(member) + group_photos(member):
            # Other people's photos live under /shared/ (another member's is the file of their own page).
            path = f"/shared/{photo.parent.name}-{photo.name}"
            shown.append(add(member, path, photo.read_bytes(), "wrong"))
        pages[member] = shown
    if hostile:
        for path, reason in HOSTILE.items():
            site.truth[path] = reason
            site.owner.setdefault(path, []).append(HOSTILE_PAGE)
            pages[HOSTILE_PAGE].append(path)
    for member, shown in pages.items():
        site.files[f"/members/{member}/"] = ("text/html; charset=utf-8", _page(member, shown))
    links = "".join(f'<li><a href="/members/{m}/">{NAMES[m]}</a></li>' for m in MEMBERS)
    site.files["/"] = ("text/html; charset=utf-8", f"<!doctype html><ul>{links}</ul>".encode())
    return site


def _start(site: Site) -> ThreadingHTTPServer:
    return start(type("Handler", (_Handler,), {"site": site}))


@contextlib.contextmanager
def serve(*, hostile: bool = True) -> Iterator[Site]:
    """Serve the site on 127.0.0.1 (and a decoy server on another port, the redirect target)."""
    site = build_site(hostile=hostile)
    site.decoy = Site(files=dict(site.files))
    site.decoy.server = _start(site.decoy)
    site.server = _start(site)
    try:
        yield site
    finally:
        stop(site.server, site.decoy.server)


def add_members(api: httpx.Client, site: Site, group: str) -> dict[str, int]:
    """The group, its members and their pages as sources, the operator's way (admin API): slug -> member id."""
    api.post("/admin/groups", json={"slug": group, "name": "Site"}).raise_for_status()
    ids = {}
    for slug in MEMBERS:
        made = api.post(f"/admin/groups/{group}/members", json={"slug": slug, "name": NAMES[slug]})
        ids[slug] = made.raise_for_status().json()["id"]
        source = {"kind": "web_page", "value": site.page_url(slug), "options": {"depth": 0}}
        api.post(f"/admin/members/{ids[slug]}/sources", json=source).raise_for_status()
    return ids


@dataclass(frozen=True)
class Tally:
    """How curation did, against what a human would say of each picture."""

    right: int  # pictures of the member on the pages
    kept: int  # of those, stored with status ok
    wrong: int  # pictures of someone else (or of nobody in the group) on the pages
    dropped: int  # of those, not kept: rejected or flagged (or never stored)
    rows: list[str]  # one line per stored photo, for the assertion messages

    @property
    def kept_share(self) -> float:
        return self.kept / self.right

    @property
    def dropped_share(self) -> float:
        return self.dropped / self.wrong

    def summary(self, label: str) -> str:
        return (
            f"{label}: kept {self.kept}/{self.right} right photos ({self.kept_share:.0%}), "
            f"dropped or flagged {self.dropped}/{self.wrong} wrong ones ({self.dropped_share:.0%})"
        )

    def details(self) -> str:
        return "\n".join(self.rows)


def tally(site: Site, photos: list[tuple[str, str, str, str | None]]) -> Tally:
    """`photos`: (member slug, source URL, status, reason) of every stored photo of the scraped group."""
    stored = {(member, urlsplit(url).path): (status, reason) for member, url, status, reason in photos}
    right = wrong = kept = let_through = 0
    rows = []
    for member in MEMBERS:
        for kind in ("right", "wrong"):
            for path in site.expected(member, kind):
                status, reason = stored.get((member, path), ("missing", None))
                rows.append(f"{member:14} {kind:5} {status:9} {reason or '':28} {path}")
                if kind == "right":
                    right += 1
                    kept += status == "ok"
                else:
                    wrong += 1
                    let_through += status in ("ok", "approved")
    unexpected = [
        f"{m} {url}" for m, url, _, _ in photos if site.truth.get(urlsplit(url).path) not in ("right", "wrong")
    ]
    assert not unexpected, f"stored photos the site never showed as pictures: {unexpected}"
    return Tally(right, kept, wrong, wrong - let_through, rows)
