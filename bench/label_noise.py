"""Wrong photos in a gallery: do the thresholds hold, and are the wrong photos found? (issue "Thresholds that
survive real galleries").

For each set (DIR/<identity>/<photos>, split as `lookalike eval` splits it: the last photo of each identity is a
member probe), the gallery's real embeddings are calibrated clean, then with wrong photos planted: 1, 3 and 1 % of
the gallery's photos moved to a random other member, and one photo copied under a second member. Each kind is
repeated over --seeds draws. Printed per set and kind: the largest and mean move of the same_person and lookalike
thresholds from the clean gallery's, the lowest tpir (member probes answered same_person with the right member),
and how many planted photos the suspect report found. tpir also falls when a member's own photo is the one moved
away: her probe is then scored against one photo fewer (the photo is reported and waits for a reviewer).

    python bench/label_noise.py ../shared/data/faces/gallery ../shared/data/faces/lfw_lookalike/members \\
        ../shared/data/faces/east_asian
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table, write_json

from lookalike.config import Settings
from lookalike.evaluation import embed_main_faces, split
from lookalike.index.calibration import Calibration, calibrate
from lookalike.index.crowd import EMPTY, cached_crowd
from lookalike.index.scoring import member_top_k
from lookalike.pipeline.pipeline import Pipeline

KINDS = ("move1", "move3", "move1pct", "copy1")


def plant(
    emb: np.ndarray, members: np.ndarray, kind: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The noisy gallery and the positions of the planted photos."""
    ids = np.unique(members)
    if kind == "copy1":
        face = int(rng.integers(len(emb)))
        to = rng.choice(ids[ids != members[face]])
        return np.concatenate([emb, emb[face : face + 1]]), np.concatenate([members, [to]]), [len(emb)]
    count = {"move1": 1, "move3": 3, "move1pct": max(1, round(0.01 * len(emb)))}[kind]
    noisy = members.copy()
    faces = [int(f) for f in rng.choice(len(emb), count, replace=False)]
    for face in faces:
        noisy[face] = rng.choice(ids[ids != members[face]])
    return emb, noisy, faces


def tpir(cal: Calibration, emb: np.ndarray, members: np.ndarray, probes: np.ndarray, truth: np.ndarray) -> float:
    scores = cal.norm().block(member_top_k(probes @ emb.T, members, k=3))
    ids = np.unique(members)
    top = scores.argmax(axis=1)
    raw = member_top_k(probes @ emb.T, members, k=3)[np.arange(len(probes)), top]
    return float(np.mean((ids[top] == truth) & (raw >= cal.threshold)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sets", nargs="+", type=Path)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    settings = Settings()
    pipeline = Pipeline(settings)
    crowd = cached_crowd(settings.model_root / "crowd", pipeline.pack_name, pipeline.embed_crops) or EMPTY
    rows: list[dict[str, object]] = []
    report: dict[str, dict[str, object]] = {}
    for directory in args.sets:
        gallery, probes = split(directory, 0)
        names = sorted(gallery)
        paths = [p for n in names for p in gallery[n]]
        labels = np.array([names.index(n) for n in names for _ in gallery[n]], np.int64)
        member_probes = [p for p in probes if p.is_member]
        embedded = embed_main_faces(pipeline, paths + [p.path for p in member_probes], workers=settings.workers)
        keep = [i for i, e in enumerate(embedded[: len(paths)]) if e is not None]
        emb, members = np.stack([embedded[i] for i in keep]).astype(np.float32), labels[keep]
        found_probes = [(p, e) for p, e in zip(member_probes, embedded[len(paths) :], strict=True) if e is not None]
        probe_emb = np.stack([e for _, e in found_probes]).astype(np.float32)
        truth = np.array([names.index(p.identity) for p, _ in found_probes], np.int64)

        def run(e: np.ndarray, m: np.ndarray) -> tuple[Calibration, list[int]]:
            result = calibrate(
                e, m, k=3, target_fmr=settings.target_fmr, lookalike_quantile=settings.lookalike_quantile, crowd=crowd
            )
            return result.calibration, [s.face for s in result.suspects]

        clean, clean_suspects = run(emb, members)
        entry = {
            "faces": len(emb),
            "identities": len(names),
            "threshold": clean.threshold,
            "lookalike_threshold": clean.lookalike_threshold,
            "clean_suspects": len(clean_suspects),
            "clean_tpir": tpir(clean, emb, members, probe_emb, truth),
            "kinds": {},
        }
        for kind in KINDS:
            moves, look_moves, tpirs, found, planted_n, extra = [], [], [], 0, 0, 0
            for seed in range(args.seeds):
                noisy_emb, noisy, planted = plant(emb, members, kind, np.random.default_rng(seed))
                cal, suspects = run(noisy_emb, noisy)
                moves.append(abs(cal.threshold - clean.threshold))
                look_moves.append(abs(cal.lookalike_cut - clean.lookalike_cut))
                tpirs.append(tpir(cal, noisy_emb, noisy, probe_emb, truth))
                found += len(set(planted) & set(suspects))
                planted_n += len(planted)
                extra += len(set(suspects) - set(planted) - set(clean_suspects))
            entry["kinds"][kind] = {
                "max_move": round(max(moves), 4),
                "mean_move": round(float(np.mean(moves)), 4),
                "max_lookalike_move": round(max(look_moves), 4),
                "mean_tpir": round(float(np.mean(tpirs)), 4),
                "min_tpir": round(min(tpirs), 4),
                "found": found,
                "planted": planted_n,
                "other_suspects": extra,
            }
            rows.append(
                {
                    "set": directory.name,
                    "noise": kind,
                    "max |dthr|": round(max(moves), 4),
                    "mean |dthr|": round(float(np.mean(moves)), 4),
                    "max |dlookalike|": round(max(look_moves), 4),
                    "mean tpir": round(float(np.mean(tpirs)), 3),
                    "min tpir": round(min(tpirs), 3),
                    "found": f"{found}/{planted_n}",
                    "other suspects": extra,
                }
            )
            print(rows[-1], file=sys.stderr, flush=True)
        report[str(directory)] = entry
    columns = [
        "set",
        "noise",
        "max |dthr|",
        "mean |dthr|",
        "max |dlookalike|",
        "mean tpir",
        "min tpir",
        "found",
        "other suspects",
    ]
    print(table(rows, columns))
    for name, entry in report.items():
        clean = {x: entry[x] for x in ("threshold", "lookalike_threshold", "clean_suspects", "clean_tpir")}
        print(f"clean {name}: {clean}")
    write_json("label_noise", {"sets": report, "seeds": args.seeds})


if __name__ == "__main__":
    main()
