"""Issue 17: CPU per diagnosis of this pipeline against a baseline commit's, and whether the answers stay the same.

Two worker processes load the two pipelines side by side: the baseline from a git worktree (its `shared/` put
first on sys.path), this one from the repository. Each takes the photos in chunks, the two alternating (which
goes first swaps every chunk), and reports the process CPU time of `Pipeline.read` per photo (one ONNX Runtime
thread, so the work runs in the calling thread) and its wall time. The ratio is baseline CPU / new CPU: per chunk
(median and spread, the noise of a shared machine) and over all photos.

Photos: the one-face photos (one face for the baseline) of the gallery and east_asian sets of the team's face
set, and 12 MP phone JPEGs made from some of them (bench/decode_12mp.py's phone_jpeg). Same answers: every photo
of gallery, east_asian, group and hard, plus the 12 MP ones; both pipelines' faces are ranked by the *baseline's*
matching code against the same index, so the comparison measures detection and alignment only. The index per set
is built from the baseline's embeddings in two folds (each photo ranked against the fold without it; group and
hard against the gallery's first fold). A photo keeps its answer when the same faces are found (each baseline box
has a new box at IoU >= 0.9, as many faces) and each face keeps its top member and verdict.

    git worktree add /tmp/today f3defcd
    .venv/bin/python bench/cpu_per_photo.py --baseline /tmp/today [--rounds 2] [--phone 24]

INT8 against fp32 on this tree's code (speed only: embeddings of two packs are not ranked against one index):

    .venv/bin/python bench/cpu_per_photo.py --baseline . --pack buffalo_s-int8 --speed-only
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, table, write_json

DATA = REPO.parent / "shared" / "data" / "faces"
SPEED_SETS = ("gallery", "east_asian")
ANSWER_SETS = ("gallery", "east_asian", "group", "hard")
IOU_SAME = 0.9


# --------------------------------------------------------------------------- worker side (one pipeline)


def _worker(code: str, conn: Connection, settings: dict[str, Any]) -> None:
    """Serve requests for one pipeline: code is the `shared/` directory whose lookalike package it imports."""
    sys.path.insert(0, code)
    import lookalike
    from lookalike.config import Settings
    from lookalike.pipeline.pipeline import Pipeline

    if not Path(lookalike.__file__).is_relative_to(code):
        raise SystemExit(f"imported {lookalike.__file__}, not the package under {code}")
    pipe = Pipeline(Settings(**settings))
    pipe.load()
    indexes: dict[tuple[str, int], tuple[Any, float]] = {}
    while True:
        request = conn.recv()
        if request is None:
            return
        kind, payload = request
        if kind == "read":
            conn.send(_read(pipe, payload))
        else:
            key = payload["key"]
            if key not in indexes:
                indexes[key] = _index(payload["embeddings"], payload["member_ids"])
            conn.send(_rank(*indexes[key], payload["queries"]))


def _read(pipe: Any, photos: Sequence[bytes]) -> list[dict[str, Any]]:
    out = []
    for data in photos:
        wall, cpu = time.perf_counter(), time.process_time()
        image, faces = pipe.read(data)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        out.append(
            {
                "cpu": cpu,
                "wall": wall,
                "size": image.original_size,
                "faces": [(f.detection.box, f.detection.score, f.embedding) for f in faces],
            }
        )
    return out


def _index(emb: Any, member_ids: Any) -> tuple[Any, float]:
    """An index of `embeddings` (member per row) calibrated as `lookalike eval` calibrates one, and its threshold,
    by the worker's own matching code."""
    from lookalike.index.calibration import calibrate
    from lookalike.index.gallery import GalleryIndex, MemberInfo

    calibration = calibrate(emb, member_ids, k=3, target_fmr=0.001)
    names = sorted(set(member_ids.tolist()))
    index = GalleryIndex.build(
        version_id=0,
        group="bench",
        model_pack="bench",
        embeddings=emb,
        member_ids=member_ids,
        photo_ids=np.arange(len(emb), dtype=np.int64),
        members={i: MemberInfo(id=i, slug=str(i), name=str(i), group="bench") for i in names},
        calibration=calibration,
        member_top_k=3,
    )
    return index, calibration.threshold


def _rank(index: Any, threshold: float, queries: Any) -> list[tuple[int, float, bool]]:
    """Top member, its similarity and the verdict of each query."""
    if not len(queries):
        return []
    return [(s[0].member.id, s[0].similarity, s[0].similarity >= threshold) for s in index.rank(queries, top=1)]


# --------------------------------------------------------------------------- parent side


class Side:
    def __init__(self, name: str, code: Path, settings: dict[str, Any]) -> None:
        self.name = name
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(str(code), child, settings), daemon=True)
        self.proc.start()

    def ask(self, kind: str, payload: Any) -> Any:
        self.conn.send((kind, payload))
        return self.conn.recv()

    def close(self) -> None:
        self.conn.send(None)
        self.proc.join(timeout=30)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def pair_faces(old: list[Any], new: list[Any]) -> list[tuple[int, int, float]] | None:
    """(old index, new index, IoU) of each baseline face, or None when the faces found differ."""
    if len(old) != len(new):
        return None
    pairs = []
    for i, o in enumerate(old):
        j = max(range(len(new)), key=lambda j: iou(o[0], new[j][0]))
        overlap = iou(o[0], new[j][0])
        if overlap < IOU_SAME:
            return None
        pairs.append((i, j, overlap))
    return pairs


def main_face(faces: list[Any], size: tuple[int, int]) -> int:
    """lookalike.pipeline.types.main_face (the photo's subject), on the worker's plain tuples."""
    cx, cy = size[0] / 2, size[1] / 2

    def weight(f: Any) -> float:
        (x1, y1, x2, y2), _, _ = f
        return (x2 - x1) * (y2 - y1) - 2.0 * (((x1 + x2) / 2 - cx) ** 2 + ((y1 + y2) / 2 - cy) ** 2)

    return max(range(len(faces)), key=lambda i: weight(faces[i]))


def timed_rounds(
    sides: dict[str, Side], photos: list[tuple[str, bytes]], *, rounds: int, chunk: int
) -> tuple[dict[str, dict[str, list[Any]]], list[float]]:
    """Every photo through both sides `rounds` times, chunk by chunk, alternating which side goes first.
    Returns the first round's results per side and name, and the CPU ratio (baseline / new) of every chunk."""
    results: dict[str, dict[str, list[Any]]] = {s: defaultdict(list) for s in sides}
    ratios: list[float] = []
    order = list(sides)
    for r in range(rounds):
        for k in range(0, len(photos), chunk):
            part = photos[k : k + chunk]
            cpu = {}
            for side in order:
                answers = sides[side].ask("read", [data for _, data in part])
                cpu[side] = sum(a["cpu"] for a in answers)
                for (name, _), a in zip(part, answers, strict=True):
                    results[side][name].append(a)
            order.reverse()
            ratios.append(cpu["baseline"] / cpu["new"])
        print(f"round {r + 1}: chunk ratios so far median {statistics.median(ratios):.3f}", flush=True)
    return results, ratios


def speed(results: dict[str, dict[str, list[Any]]], names: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {"photos": len(names)}
    for side in ("baseline", "new"):
        cpu = [a["cpu"] for n in names for a in results[side][n]]
        wall = [a["wall"] for n in names for a in results[side][n]]
        row[f"{side}_cpu_ms"] = round(1000 * statistics.fmean(cpu), 1)
        row[f"{side}_wall_ms"] = round(1000 * statistics.fmean(wall), 1)
        row[f"{side}_photos_per_cpu_s"] = round(1 / statistics.fmean(cpu), 1)
    row["cpu_ratio"] = round(row["baseline_cpu_ms"] / row["new_cpu_ms"], 3)
    row["wall_ratio"] = round(row["baseline_wall_ms"] / row["new_wall_ms"], 3)
    return row


def same_answers(
    baseline: Side, results: dict[str, dict[str, list[Any]]], sets: dict[str, list[str]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per set: photos whose faces, top members and verdicts are the same (see the module docstring)."""
    old = {n: v[0] for n, v in results["baseline"].items()}
    new = {n: v[0] for n, v in results["new"].items()}
    # Two folds per gallery-like set, by a photo's position in its identity's folder: each photo is ranked against
    # the other fold's index; group and hard photos against the gallery's first fold.
    parity: dict[str, int] = {}
    for s in ("gallery", "east_asian"):
        for folder in sorted({Path(n).parent for n in sets[s]}):
            for i, n in enumerate(sorted(m for m in sets[s] if Path(m).parent == folder)):
                parity[n] = i % 2
    sent: set[tuple[str, int]] = set()

    def index_key(name: str) -> tuple[str, int]:
        base = name.removeprefix("phone/")
        s = base.split("/")[0]
        return (s, 1 - parity[base]) if base in parity else ("gallery", 0)

    def index_of(key: tuple[str, int]) -> dict[str, Any]:
        names = [n for n in sets[key[0]] if parity[n] == key[1] and old[n]["faces"]]
        # A thinned-out run (--every) may leave a fold without photos: the other fold's then.
        names = names or [n for n in sets[key[0]] if old[n]["faces"]]
        identities = sorted({Path(n).parent.name for n in names})
        emb = [old[n]["faces"][main_face(old[n]["faces"], old[n]["size"])][2] for n in names]
        ids = [identities.index(Path(n).parent.name) for n in names]
        return {"embeddings": np.stack(emb).astype(np.float32), "member_ids": np.array(ids, dtype=np.int64)}

    def ranked(key: tuple[str, int], faces: list[Any]) -> list[tuple[int, float, bool]]:
        queries = np.stack([f[2] for f in faces]).astype(np.float32) if faces else np.zeros((0, 512), np.float32)
        payload = {"key": key, "queries": queries, **({} if key in sent else index_of(key))}
        sent.add(key)
        answer: list[tuple[int, float, bool]] = baseline.ask("rank", payload)
        return answer

    rows, changed = [], []
    for s, names in sets.items():
        counts: dict[str, int] = defaultdict(int)
        ious: list[float] = []
        cosines: list[float] = []
        for name in names:
            key = index_key(name)
            o, n = old[name]["faces"], new[name]["faces"]
            counts["photos"] += 1
            counts["no_face_baseline"] += not o
            counts["no_face_new"] += not n
            pairs = pair_faces(o, n)
            same = pairs is not None
            if pairs is not None:
                counts["same_faces"] += 1
                ro, rn = ranked(key, o), ranked(key, n)
                for i, j, overlap in pairs:
                    ious.append(overlap)
                    cosines.append(float(np.dot(o[i][2], n[j][2])))
                    same = same and ro[i][0] == rn[j][0] and ro[i][2] == rn[j][2]
            counts["same_answer"] += same
            if not same:
                changed.append(
                    {
                        "photo": name,
                        "faces": f"{len(o)} -> {len(n)}",
                        "scores": f"{[round(f[1], 2) for f in o]} -> {[round(f[1], 2) for f in n]}",
                    }
                )
        rows.append(
            {
                "set": s,
                **counts,
                "same_answer_share": round(counts["same_answer"] / max(1, counts["photos"]), 4),
                "iou_min": round(min(ious), 3) if ious else None,
                "cosine_p1": round(float(np.percentile(cosines, 1)), 4) if cosines else None,
                "cosine_min": round(min(cosines), 4) if cosines else None,
            }
        )
    return rows, changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="a git worktree of the baseline commit")
    parser.add_argument("--data", type=Path, default=DATA, help="the face set (gallery/, east_asian/, ...)")
    parser.add_argument("--rounds", type=int, default=2, help="timed passes over the photos")
    parser.add_argument("--chunk", type=int, default=16, help="photos per alternation")
    parser.add_argument("--phone", type=int, default=24, help="12 MP phone JPEGs (made from one-face photos)")
    parser.add_argument("--every", type=int, default=1, help="time every Nth photo only (a quick look)")
    parser.add_argument("--pack", default="buffalo_s", help="the new side's model pack (the baseline's: buffalo_s)")
    parser.add_argument("--model-root", type=Path, help="LOOKALIKE_MODEL_ROOT of both sides")
    parser.add_argument("--speed-only", action="store_true", help="no same-answers table")
    args = parser.parse_args()
    settings: dict[str, Any] = {"data_dir": str(REPO / "data" / "bench-cpu"), "ort_threads": 1}
    if args.model_root:
        settings["model_root"] = str(args.model_root)
    sides = {
        "baseline": Side("baseline", args.baseline.resolve() / "shared", settings),
        "new": Side("new", REPO / "shared", {**settings, "model_pack": args.pack}),
    }
    sets = {s: sorted(str(p.relative_to(args.data)) for p in (args.data / s).rglob("*.jpg")) for s in ANSWER_SETS}
    photos = {n: (args.data / n).read_bytes() for names in sets.values() for n in names}

    # Group and hard once (answers only), then the timed rounds.
    first, _ = timed_rounds(sides, [(n, photos[n]) for s in ("group", "hard") for n in sets[s]], rounds=1, chunk=8)
    speed_names = [n for s in SPEED_SETS for n in sets[s]][:: args.every]
    sets.update({s: [n for n in sets[s] if n in speed_names] for s in SPEED_SETS})
    results, ratios = timed_rounds(sides, [(n, photos[n]) for n in speed_names], rounds=args.rounds, chunk=args.chunk)
    for side in sides:
        results[side].update(first[side])
    one_face = [n for n in speed_names if len(results["baseline"][n][0]["faces"]) == 1]
    # Imported here: it imports lookalike, which a worker must import from its own code directory.
    from decode_12mp import phone_jpeg

    step = max(1, len(one_face) // args.phone)
    phones = [(f"phone/{n}", phone_jpeg(args.data / n, (4000, 3000))) for n in one_face[::step][: args.phone]]
    phone_results, phone_ratios = timed_rounds(sides, phones, rounds=args.rounds, chunk=4)
    for side in sides:
        results[side].update(phone_results[side])

    rows = [
        {"photos": "one-face, gallery + east_asian", **speed(results, one_face)},
        *(
            {"photos": f"one-face, {s}", **speed(results, [n for n in one_face if n.startswith(s + "/")])}
            for s in SPEED_SETS
        ),
        {"photos": "12 MP phone JPEGs", **speed(results, [n for n, _ in phones])},
    ]
    chunks = {
        "one_face_chunk_ratio_median": round(statistics.median(ratios), 3),
        "one_face_chunk_ratio_p10_p90": [round(float(np.percentile(ratios, q)), 3) for q in (10, 90)],
        "phone_chunk_ratio_median": round(statistics.median(phone_ratios), 3),
        "phone_chunk_ratio_p10_p90": [round(float(np.percentile(phone_ratios, q)), 3) for q in (10, 90)],
    }
    answer_rows: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    if not args.speed_only:
        answer_rows, changed = same_answers(sides["baseline"], results, {**sets, "phone": [n for n, _ in phones]})
    for side in sides.values():
        side.close()

    print("\nCPU per photo (Pipeline.read, one ORT thread), baseline vs new, paired chunks\n")
    columns = ["photos", "baseline_cpu_ms", "new_cpu_ms", "cpu_ratio", "baseline_wall_ms", "new_wall_ms"]
    print(table(rows, [*columns, "wall_ratio", "new_photos_per_cpu_s"]))
    print(f"\nchunk ratios (baseline / new CPU): {chunks}\n")
    columns = ["set", "photos", "same_faces", "same_answer", "same_answer_share", "no_face_baseline", "no_face_new"]
    if answer_rows:
        print(table(answer_rows, [*columns, "iou_min", "cosine_p1", "cosine_min"]))
    if changed:
        print("\nchanged answers:\n" + table(changed, ["photo", "faces", "scores"]))
    data = {"baseline": str(args.baseline), "pack": args.pack, "speed": rows, "chunks": chunks, "answers": answer_rows}
    name = "cpu_per_photo" if args.pack == "buffalo_s" else f"cpu_per_photo_{args.pack}"
    print("wrote", write_json(name, {**data, "changed": changed}))


if __name__ == "__main__":
    main()
