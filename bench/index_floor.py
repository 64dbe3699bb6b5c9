"""Why 1M faces are not searched in 2 ms here: what a scan of the whole gallery costs per byte of code, and how
much of the gallery a partitioned index would still have to scan.

Three measurements on the galleries and queries of `bench/index_search.py` (same sizes, seed and draws):

1. memory: the rate numpy streams the gallery's float32 rows on 1 and on 2 threads (a floor for any scan);
2. exhaustive PQ fast scan + exact re-rank (as the service's `pqrefine` index) at 16, 24, 32 and 48 bytes per face
   (PCA to 2 dimensions per 4-bit code): the scan alone, the whole search, recall@10 against exact search;
3. k-means partitions (IVF; 4096 lists trained on 200k faces, on the 512-d vectors and on 64 PCA dimensions): the
   share of the exact 10 nearest faces that lie in the nprobe lists nearest the query, against the share of the
   gallery those lists hold. No index is built: it is the best recall@10 such an index can reach at that scan.

    nice -n 19 .venv/bin/python bench/index_floor.py --sizes 1M      # about 10 minutes here
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import table, write_json
from index_search import TOP_K, exact_truth, label, machine, parse_size, recall
from synthetic_gallery import FACES, FaceModel, Floats, load_real_faces, realism_report, split_people

from lookalike.index import ann

CODES = ("PCA64,PQ32x4fs", "PCA96,PQ48x4fs", "PCA128,PQ64x4fs", "PCA192,PQ96x4fs")
LISTS = 4096
SHARES = (0.02, 0.05, 0.1, 0.2, 0.3)


def stream_rate(x: Floats, threads: int) -> float:
    """GB/s summing the rows, split over `threads` threads (numpy releases the GIL)."""
    parts = np.array_split(x, threads)
    best = float("inf")
    for _ in range(3):
        workers = [threading.Thread(target=p.sum, kwargs={"dtype": np.float32}) for p in parts]
        t0 = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        best = min(best, time.perf_counter() - t0)
    return x.nbytes / best / 1e9


def scan_rows(
    n: int, emb: Floats, kinds: dict[str, Floats], tops: dict[str, Any], queries: int
) -> list[dict[str, Any]]:
    sample = emb[ann.train_sample(len(emb))]
    rows = []
    for spec in CODES:
        base = faiss.index_factory(emb.shape[1], spec, faiss.METRIC_INNER_PRODUCT)
        base.train(sample)
        index = faiss.IndexRefineFlat(base)
        index.add(emb)
        for candidates in (2048, 8192):
            params = faiss.IndexRefineSearchParameters()
            params.k_factor = candidates / TOP_K
            row: dict[str, Any] = {"faces": label(n), "code": spec, "bytes/face": base.sa_code_size()}
            row["candidates"] = candidates
            for kind, q in kinds.items():
                scan, whole, found = [], [], []
                for v in q[:queries]:
                    t0 = time.perf_counter()
                    base.search(v[None], candidates)
                    scan.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    _, pos = index.search(v[None], TOP_K, params=params)
                    whole.append(time.perf_counter() - t0)
                    found.append(pos[0])
                row[f"{kind} recall@10"] = round(recall(np.stack(found), tops[kind][:queries]), 3)
                row[f"{kind} scan ms"] = round(float(np.median(scan)) * 1e3, 2)
                row[f"{kind} p50 ms"] = round(float(np.median(whole)) * 1e3, 2)
            rows.append(row)
            print(row, flush=True)
        del index
    return rows


def partition_rows(
    n: int, emb: Floats, kinds: dict[str, Floats], tops: dict[str, Any], rng: np.random.Generator
) -> list[dict[str, Any]]:
    sample = emb[np.sort(rng.choice(len(emb), min(len(emb), LISTS * 48), replace=False))]
    rows = []
    for dims in (emb.shape[1], 64):
        pca = None
        if dims < emb.shape[1]:
            pca = faiss.PCAMatrix(emb.shape[1], dims)
            pca.train(sample)
        x = pca.apply(emb) if pca else emb
        km = faiss.Kmeans(dims, LISTS, niter=10, seed=1, spherical=pca is None)
        km.train(pca.apply(sample) if pca else sample)
        coarse = faiss.IndexFlatIP(dims) if pca is None else faiss.IndexFlatL2(dims)
        coarse.add(km.centroids)
        cell = coarse.search(x, 1)[1][:, 0]
        sizes = np.bincount(cell, minlength=LISTS)
        for kind, q in kinds.items():
            order = coarse.search(pca.apply(q) if pca else q, LISTS)[1]
            row: dict[str, Any] = {"faces": label(n), "lists on": f"{dims}-d", "query": kind}
            for share in SHARES:
                probe = order[:, : int(LISTS * share)]
                hit = np.mean([np.isin(cell[t], p).mean() for t, p in zip(tops[kind], probe, strict=True)])
                scanned = sizes[probe].sum(axis=1).mean() / len(emb)
                row[f"nprobe {int(LISTS * share)}"] = f"{hit:.3f} ({scanned:.0%} scanned)"
            rows.append(row)
            print(row, flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1M")
    ap.add_argument("--queries", type=int, default=100, help="timed queries per kind (recall over the same)")
    ap.add_argument("--faces", type=Path, default=FACES)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    model_people, held_out = split_people(load_real_faces(args.faces))
    model = FaceModel.from_real(model_people)
    model.fit(model_people, rng)
    realism_report(model, model_people, held_out, rng)  # as index_search.py: the same draws follow
    memory, scans, partitions = [], [], []
    for n in (parse_size(s) for s in args.sizes.split(",") if s):
        emb, ids, people = model.gallery(n, rng)
        kinds = {
            "no-match": held_out.emb[rng.permutation(len(held_out.emb))[: min(200, len(held_out.emb))]],
            "genuine": model.photos(people, rng.choice(ids, 200), rng),
        }
        tops = {kind: exact_truth(emb, ids, q).top for kind, q in kinds.items()}
        memory.append({"faces": label(n), "GB": round(emb.nbytes / 1e9, 2)})
        memory[-1].update({f"{t} thread(s) GB/s": round(stream_rate(emb, t), 1) for t in (1, 2)})
        print(memory[-1], flush=True)
        scans += scan_rows(n, emb, kinds, tops, args.queries)
        faiss.omp_set_num_threads(os.cpu_count() or 1)  # k-means and assignment only; nothing here is timed
        partitions += partition_rows(n, emb, kinds, tops, rng)
        faiss.omp_set_num_threads(1)
    print("\n" + table(memory, list(memory[0])))
    print("\n" + table(scans, list(scans[0])))
    print("\n" + table(partitions, list(partitions[0])))
    path = write_json(
        "index_floor", {"index_machine": machine(), "memory": memory, "scan": scans, "partitions": partitions}
    )
    print("wrote", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
