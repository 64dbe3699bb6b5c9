"""How well an identity-partitioned index could do: one inverted list per member (its photos), the coarse centroid
of a list the member's mean embedding (unit or not), the query's nprobe nearest members scanned exactly. Reported
per nprobe: the share of the exact 10 nearest faces whose member is among the nprobe nearest (the best recall@10
such an index can reach, whatever the scan) and the faces scanned. Exact member order, no index is built: a real
index adds the coarse search over every member and the scan of those faces.

The galleries and queries are those of `bench/index_search.py --sizes` with the same sizes and seed (the same
random draws in the same order).

    nice -n 19 .venv/bin/python bench/member_partition.py --sizes 100k,1M
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from index_search import exact_truth, label, parse_size
from synthetic_gallery import FACES, FaceModel, load_real_faces, realism_report, split_people

NPROBES = (64, 256, 1024, 2048, 4096, 8192)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100k,1M")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--faces", type=Path, default=FACES)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    model_people, held_out = split_people(load_real_faces(args.faces))
    model = FaceModel.from_real(model_people)
    model.fit(model_people, rng)
    realism_report(model, model_people, held_out, rng)  # as index_search.py: the same draws follow
    print("\n| faces | query | centroid | " + " | ".join(f"nprobe {p}" for p in NPROBES) + " |")
    print("|---|---|---|" + "---|" * len(NPROBES))
    for n in (parse_size(s) for s in args.sizes.split(",") if s):
        emb, ids, people = model.gallery(n, rng)
        kinds = {
            "no-match": held_out.emb[rng.permutation(len(held_out.emb))[: min(args.queries, len(held_out.emb))]],
            "genuine": model.photos(people, rng.choice(ids, args.queries), rng),
        }
        counts = np.bincount(ids)
        order = np.argsort(ids, kind="stable")
        means = np.add.reduceat(emb[order], np.r_[0, np.cumsum(counts)[:-1]], axis=0) / counts[:, None]
        for kind, queries in kinds.items():
            top = exact_truth(emb, ids, queries).top
            for name, cents in (("mean", means), ("unit", means / np.linalg.norm(means, axis=1, keepdims=True))):
                sims = queries @ cents.T
                by_sim = np.argsort(-sims, axis=1)
                rank = np.empty_like(by_sim)
                np.put_along_axis(rank, by_sim, np.arange(sims.shape[1])[None, :], axis=1)
                member_rank = np.take_along_axis(rank, ids[top], axis=1)  # of each true neighbour's member
                cells = []
                for p in NPROBES:
                    scanned = counts[by_sim[:, :p]].sum(axis=1).mean()
                    cells.append(f"{(member_rank < p).mean():.4f} ({scanned / 1000:.1f}k faces)")
                print(f"| {label(n)} | {kind} | {name} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
