"""Figure 4: ingestion throughput, as a ratio to the raw ceiling measured in the same run.

The admin paths end to end, in-process, photos per second over a whole group:
- scrape: one scrape job of the group, each member with a folder source (read, dedupe, decode, detect, align,
  embed, store; then one curation of the group and one index version) - the bulk path;
- upload: each member's photos as one ZIP through the upload job (the same, but curation and an index version
  per member, as an admin uploading member after member would cause).
Target (issue 6): >= 0.8x the raw ceiling.

    .venv/bin/python bench/ingest_throughput.py [--faces DIR] [--members 8] [--repeat 5]

DIR/<member>/<photos>: by default the team's face set (/work/shared/data/faces/east_asian, ~250 photos of 21
people) where it exists, otherwise the demo gallery of the repository (25 photos).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import raw_ceiling
from common import REPO, scratch_dir, table, write_json

from lookalike import admin
from lookalike.admin import add_sources
from lookalike.config import Settings
from lookalike.db.migrate import upgrade
from lookalike.ingest.scrape import scrape_job, upload_job
from lookalike.jobs.functions import JobContext
from lookalike.runtime import build_context

SHARED_FACES = Path("/work/shared/data/faces/east_asian")
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def members_of(root: Path, limit: int) -> dict[str, list[Path]]:
    found = {
        d.name: sorted(p for p in d.iterdir() if p.suffix.lower() in SUFFIXES)
        for d in sorted(root.iterdir())
        if d.is_dir()
    }
    return dict(list({k: v for k, v in found.items() if v}.items())[:limit])


def zipped(paths: list[Path]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for i, path in enumerate(paths):
            archive.writestr(f"{i:03d}{path.suffix.lower()}", path.read_bytes())
    return buffer.getvalue()


def fresh_group(members: dict[str, list[Path]]) -> tuple[JobContext, dict[str, int]]:
    settings = Settings(data_dir=scratch_dir("ingest"))
    upgrade(settings.sqlalchemy_url)
    ctx = build_context(settings)
    ctx.pipeline.load()
    admin.create_group(settings, "bench", "Bench")
    return ctx, {slug: admin.create_member(settings, "bench", slug, slug, {}) for slug in members}


def scrape_group(members: dict[str, list[Path]]) -> dict[str, Any]:
    ctx, ids = fresh_group(members)
    for slug, paths in members.items():
        add_sources(ctx.settings, ids[slug], [("folder", str(paths[0].parent), {})])
    t0 = time.perf_counter()
    result = scrape_job(ctx, {"group": "bench"}, progress=lambda _: None)
    wall = time.perf_counter() - t0
    stored = result["totals"]["stored"]
    n = sum(len(p) for p in members.values())
    return {"path": "scrape group", "stored": stored, "seconds": round(wall, 1), "photos_per_s": round(n / wall, 1)}


def upload_per_member(members: dict[str, list[Path]]) -> dict[str, Any]:
    ctx, ids = fresh_group(members)
    archives = {slug: zipped(paths) for slug, paths in members.items()}
    stored = 0
    t0 = time.perf_counter()
    for slug, data in archives.items():
        result = upload_job(ctx, {"member_id": ids[slug], "name": f"{slug}.zip"}, data, progress=lambda _: None)
        stored += result["totals"]["stored"]
    wall = time.perf_counter() - t0
    n = sum(len(p) for p in members.values())
    return {
        "path": "upload per member",
        "stored": stored,
        "seconds": round(wall, 1),
        "photos_per_s": round(n / wall, 1),
    }


def paired(members: dict[str, list[Path]], photos: list[bytes], repeat: int, workers: int) -> list[dict[str, Any]]:
    """`repeat` rounds of: the best raw set-up (procs Nx1) once over the photos, then each path; a ratio per round
    from figures measured seconds apart, so a shared VM's drift between the ceiling and the paths cancels."""
    rounds = []
    for r in range(repeat):
        ceiling = raw_ceiling.processes(photos, 1, workers)
        row: dict[str, Any] = {"round": r + 1, "ceiling_photos_per_s": round(ceiling, 1)}
        for measure in (scrape_group, upload_per_member):
            result = measure(members)
            row[f"{result['path']} ratio"] = round(result["photos_per_s"] / ceiling, 3)
        rounds.append(row)
        print(row, flush=True)
    return rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = SHARED_FACES if SHARED_FACES.is_dir() else REPO / "demo" / "gallery"
    parser.add_argument("--faces", type=Path, default=default)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1, help="raw ceiling: passes over the photos")
    parser.add_argument("--repeat", type=int, default=0, help="then this many paired rounds (ceiling, paths)")
    args = parser.parse_args()
    members = members_of(args.faces, args.members)
    photos = [p for paths in members.values() for p in paths]
    data = [p.read_bytes() for p in photos]
    raw = raw_ceiling.measure(data, rounds=args.rounds)

    ceiling = raw["ceiling"]["photos_per_s"]
    rows = [scrape_group(members), upload_per_member(members)]
    for row in rows:
        row["photos"] = len(photos)
        row["ceiling_photos_per_s"] = ceiling
        row["ratio"] = round(row["photos_per_s"] / ceiling, 3)
    workers = os.cpu_count() or 1
    rounds = paired(members, data, args.repeat, workers) if args.repeat else []
    print(f"ingestion of {args.faces} vs raw ceiling\n")
    print(table(raw["setups"], ["setup", "photos_per_s", "p50_ms", "p95_ms"]))
    print()
    print(table(rows, ["path", "photos", "stored", "seconds", "photos_per_s", "ceiling_photos_per_s", "ratio"]))
    if rounds:
        print(f"\npaired rounds (procs {workers}x1 ceiling, then each path)\n")
        print(table(rounds, list(rounds[0])))
        for path in ("scrape group", "upload per member"):
            ratios = [r[f"{path} ratio"] for r in rounds]
            print(f"{path}: median ratio {statistics.median(ratios):.3f} (min {min(ratios)}, max {max(ratios)})")
    out = {"faces": str(args.faces), "raw": raw, "ingest": rows, "paired": rounds}
    print("wrote", write_json("ingest_throughput", out))


if __name__ == "__main__":
    main()
