"""What a diagnosis leaves behind, embedded mode: after 160 diagnoses and the result lifetime, no upload bytes
and no embedding of an uploader's face remain in the database, the data dir, temp folders or the log.

(tests/distributed/test_dist_privacy.py does the same against Redis and PostgreSQL.)
"""

from __future__ import annotations

import secrets
import shutil
import sqlite3
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from leak_scan import face_fragments, mark, print_reports, scan_files, scan_rows, scan_system_temp
from test_api import FACES, run_gateway

from lookalike.pipeline.pipeline import Pipeline

# Each of the 12 photos 13 or 14 times, over a run of about two result lifetimes on 2 cores, so that results are
# purged while others are still being answered. (It was 1,000, then 240: more chances for a leak that strikes once
# in hundreds.)
N_DIAGNOSES = 160
CLIENTS = 4
RESULT_TTL_S = 4
PHOTOS = sorted((FACES / "probes").rglob("*.jpg")) + sorted((FACES / "group").rglob("*.jpg"))


def diagnose_rows(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM jobs WHERE kind = 'diagnose'").fetchone()[0])


@pytest.mark.alone
def test_nothing_of_the_uploads_remains(
    demo_data_dir: Path,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    pipeline: Pipeline,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shutil.copytree(demo_data_dir, tmp_path / "data")
    (tmp_path / "tmp").mkdir()
    prefix = f"privacy-{secrets.token_hex(6)}"
    sources = [p.read_bytes() for p in PHOTOS]
    uploads = [mark(sources[i % len(sources)], f"{prefix}-{i:05d}") for i in range(N_DIAGNOSES)]
    heads = [u[:64] for u in uploads]
    fragments = face_fragments(lambda data: [f.embedding for f in pipeline.read(data)[1]], sources)
    started = time.time()
    env = {
        "LOOKALIKE_RESULT_TTL_S": str(RESULT_TTL_S),
        "TMPDIR": str(tmp_path / "tmp"),
        "LOOKALIKE_DIAGNOSE_RATE_LIMIT": str(10 * N_DIAGNOSES),  # one client sends them all
    }
    with run_gateway(tmp_path / "data", tmp_path, **env) as gateway:

        def send(k: int) -> list[int]:
            with gateway.client() as c:
                return [
                    c.post("/diagnose", files={"image": ("p.jpg", uploads[i], "image/jpeg")}).status_code
                    for i in range(k, N_DIAGNOSES, CLIENTS)
                ]

        with ThreadPoolExecutor(CLIENTS) as pool:
            statuses = Counter(s for chunk in pool.map(send, range(CLIENTS)) for s in chunk)
        assert statuses == {200: N_DIAGNOSES}, statuses
        db = tmp_path / "data" / "lookalike.db"
        assert diagnose_rows(db) > 0  # the latest results, still within their lifetime (older ones are gone)
        # The results expire: the gateway purges them by itself, with no request to prompt it.
        deadline = time.monotonic() + RESULT_TTL_S + 30
        while diagnose_rows(db) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = diagnose_rows(db)
        assert left == 0, f"{left} diagnose results outlived their {RESULT_TTL_S}s lifetime"
        with gateway.client() as c:  # and the service still answers afterwards
            assert c.post("/diagnose", files={"image": ("p.jpg", sources[0], "image/jpeg")}).status_code == 200
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        rows = [repr(r).encode() for t in tables for r in conn.execute(f'SELECT * FROM "{t}"')]
    token = prefix.encode()
    reports = [
        scan_rows(f"sqlite rows of {len(tables)} tables", rows, heads, token, fragments),
        scan_files([tmp_path / "data", tmp_path / "tmp", gateway.log], heads, token, fragments),
        scan_system_temp(heads, token, fragments, since=started - 1, pytest_root=tmp_path_factory.getbasetemp().parent),
    ]
    with capsys.disabled():
        title = f"privacy, embedded: {N_DIAGNOSES} diagnoses answered, results purged after {RESULT_TTL_S}s;"
        print_reports(title, len(heads), len(fragments), reports)
    assert reports[0].scanned > 0 and reports[1].scanned >= 3  # the database, its WAL and the log at least
    for report in reports:
        assert report.leaks == [], report.leaks[:10]


def test_the_scan_finds_what_it_looks_for(tmp_path: Path, pipeline: Pipeline) -> None:
    """The needles are real: an embedding stored the way code would store one, or an upload's head, is found."""
    import json

    data = mark(PHOTOS[0].read_bytes(), "privacy-selftest-00001")
    [face] = pipeline.read(data)[1]
    fragments = face_fragments(lambda d: [f.embedding for f in pipeline.read(d)[1]], [PHOTOS[0].read_bytes()])
    for name, content in {
        "raw.bin": face.embedding.tobytes(),
        "json.txt": json.dumps({"e": face.embedding.tolist()}).encode(),
        "log.txt": f"embedding {face.embedding.tolist()}".encode(),
    }.items():
        (tmp_path / name).write_bytes(b"x" * 100 + content + b"y" * 100)
        assert scan_files([tmp_path / name], [], b"-", fragments).leaks, name
    (tmp_path / "upload.bin").write_bytes(data)
    assert scan_files([tmp_path / "upload.bin"], [data[:64]], b"privacy-selftest", []).leaks
