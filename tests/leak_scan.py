"""Privacy scans for tests: look through Redis, files and database rows for what an upload must not leave behind.

Needles are (a) an upload's first 64 bytes, made unique per upload by a token in a JPEG comment (see
`mark`), together with the token prefix of the run, and (b) fragments of the uploader's own face
embeddings: 4 consecutive float32 values as bytes, as float64 bytes, and as the text JSON, numpy or a log line
would print them. The service never writes either; these scans prove it.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import redis

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
UPLOAD_PREFIX = "lookalike:upload:"
# Where in a 512-d embedding the fragments are taken: a run of 4 values from each of these.
FRAGMENT_AT = (0, 200, 400)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def mark(data: bytes, token: str) -> bytes:
    """The same picture with `token` in a comment among its first 64 bytes, so that each upload's first 64 bytes
    are its own (plain JPEG headers are alike, and the gallery holds photos from the same cameras). The pixels,
    and so every diagnosis, stay the same."""
    text = token.encode()
    if data.startswith(JPEG_MAGIC):
        return data[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + data[2:]
    if data.startswith(PNG_MAGIC):
        return data[:33] + _png_chunk(b"tEXt", b"c\x00" + text) + data[33:]  # right after IHDR
    raise ValueError("mark() takes JPEG or PNG")


@dataclass
class ScanReport:
    where: str
    scanned: int = 0
    scanned_bytes: int = 0
    skipped: int = 0
    leaks: list[str] = field(default_factory=list)

    def check(self, data: bytes, where: str, heads: Sequence[bytes], prefix: bytes, fragments: Sequence[bytes]) -> None:
        self.scanned += 1
        self.scanned_bytes += len(data)
        what = _leaks_in(data, heads, prefix, fragments)
        if what:
            self.leaks.append(f"{what} in {where}")

    def line(self) -> str:
        return (
            f"{self.where}: scanned {self.scanned} ({self.scanned_bytes / 1e6:.1f} MB), skipped {self.skipped}, "
            f"leaks {len(self.leaks)}"
        )


def embedding_needles(embeddings: Iterable[npt.NDArray[np.float32]]) -> list[bytes]:
    """Byte and text fragments of each embedding, long enough that no other data matches them by chance."""
    out: list[bytes] = []
    for emb in embeddings:
        for at in FRAGMENT_AT:
            run = np.asarray(emb[at : at + 4], dtype=np.float32)
            out += [run.tobytes(), run.astype(np.float64).tobytes()]
            as_json = json.dumps([float(x) for x in run[:3]])[1:-1]  # "0.0123..., -0.04..., ..."
            out += [as_json.encode(), as_json.replace(" ", "").encode()]
            out.append(" ".join(str(x) for x in run[:3]).encode())  # numpy's own str of each float32
    return out


def _leaks_in(data: bytes, heads: Sequence[bytes], prefix: bytes, fragments: Sequence[bytes]) -> str | None:
    if prefix in data and any(h in data for h in heads):
        return "upload bytes"
    if any(f in data for f in fragments):
        return "face embedding"
    return None


def scan_redis(url: str, needles: Iterable[bytes], prefix: bytes, fragments: Sequence[bytes] = ()) -> ScanReport:
    """Every key of the test Redis db, every value of it: no upload key, no picture bytes, no upload's head."""
    heads = list(needles)
    report = ScanReport(f"redis {url}")
    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(count=1000):
            kind = client.type(key).decode()
            values: list[bytes] = [key]
            if kind == "string":
                values.append(client.get(key) or b"")
            elif kind == "list":
                values += client.lrange(key, 0, -1)
            elif kind == "hash":
                for k, v in client.hgetall(key).items():
                    values += [k, v]
            elif kind == "set":
                values += list(client.smembers(key))
            elif kind == "zset":
                values += [m for m, _ in client.zrange(key, 0, -1, withscores=True)]
            else:
                report.skipped += 1
            report.scanned += 1
            report.scanned_bytes += sum(len(v) for v in values)
            name = key.decode(errors="replace")
            if name.startswith(UPLOAD_PREFIX):
                report.leaks.append(f"upload key {name}")
            for value in values:
                what = _leaks_in(value, heads, prefix, fragments)
                if what or JPEG_MAGIC in value or PNG_MAGIC in value:
                    report.leaks.append(f"{what or 'picture bytes'} in {kind} {name}")
                    break
    finally:
        client.close()
    return report


def scan_files(
    roots: Iterable[Path],
    needles: Iterable[bytes],
    prefix: bytes,
    fragments: Sequence[bytes] = (),
    *,
    since: float = 0.0,
    max_bytes: int = 512 << 20,
    exclude: Iterable[Path] = (),
) -> ScanReport:
    """Regular files under `roots` changed since `since` (epoch s): none may hold an upload's first 64 bytes
    or a fragment of an uploader's embedding."""
    heads = list(needles)
    paths = [Path(r) for r in roots]
    skip = {Path(e) for e in exclude}
    report = ScanReport(", ".join(str(p) for p in paths) + (" (files changed during the run)" if since else ""))
    seen: set[tuple[int, int]] = set()
    for root in paths:
        walked = os.walk(root, onerror=lambda _: None) if root.is_dir() else [(root.parent, [], [root.name])]
        for dirpath, dirnames, filenames in walked:
            dirnames[:] = [d for d in dirnames if Path(dirpath) / d not in skip]
            for filename in filenames:
                path = Path(dirpath) / filename
                try:
                    st = path.lstat()
                except OSError:
                    report.skipped += 1
                    continue
                if not path.is_file() or path.is_symlink() or (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
                if st.st_mtime < since and st.st_ctime < since:
                    continue
                if st.st_size > max_bytes:
                    report.skipped += 1
                    continue
                try:
                    data = path.read_bytes()
                except OSError:
                    report.skipped += 1
                    continue
                report.check(data, str(path), heads, prefix, fragments)
    return report


def scan_rows(
    where: str, rows: Iterable[bytes], needles: Iterable[bytes], prefix: bytes, fragments: Sequence[bytes]
) -> ScanReport:
    """Database rows, each rendered as bytes (text of every column)."""
    heads = list(needles)
    report = ScanReport(where)
    for row in rows:
        report.check(row, f"a row: {row[:120]!r}", heads, prefix, fragments)
    return report


def scan_system_temp(
    needles: Iterable[bytes], prefix: bytes, fragments: Sequence[bytes], *, since: float, pytest_root: Path
) -> ScanReport:
    """The system temp folder, files changed since `since`, less pytest's own folders (other tests, and other
    runs, put these photos into galleries there)."""
    return scan_files([Path(tempfile.gettempdir())], needles, prefix, fragments, since=since, exclude=[pytest_root])


def print_reports(title: str, n_heads: int, n_fragments: int, reports: Sequence[ScanReport]) -> None:
    print(f"\n{title}")
    print(f"  looked for {n_heads} upload heads and {n_fragments} embedding fragments")
    for report in reports:
        print("  " + report.line())


def face_fragments(read: Callable[[bytes], Sequence[npt.NDArray[np.float32]]], photos: Iterable[bytes]) -> list[bytes]:
    """Needles of the embeddings of every face in `photos`, as `read` (the pipeline) computes them."""
    return embedding_needles(e for data in photos for e in read(data))
