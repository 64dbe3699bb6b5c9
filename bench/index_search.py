"""Exact (flat) vs approximate (HNSW, IVF) gallery search at 10k, 100k and 1M faces, on realistic embeddings.

Galleries are synthetic identities modelled on real buffalo_s embeddings of the shared face set
(bench/synthetic_gallery.py; the realism check is printed first). Two kinds of queries, reported separately:

* no-match: real photos of people who are not in the gallery (held out from the model); what a lookalike query
  is: it resembles nobody closely, so its nearest faces are barely nearer than the rest (hard for any ANN index);
* genuine: a fresh synthetic photo of an indexed identity.

Per size: exact ground truth (top 10 faces, and the exact per-member ranking: mean of each member's best 3 photo
similarities over all their photos), then for the flat index and each approximate configuration: build time,
index bytes (serialized) and RSS delta, and per search setting recall@10 against exact search and the latency per
query, p50 and p95, one query at a time (as the service searches one photo's faces at a time) and in batches of 8.
Every approximate timing row carries the flat index's timings measured interleaved with it, on the same queries
(a subsample at large sizes, as flat search is slow there). Flat search is timed with faiss's default BLAS
threshold and with BLAS forced (distance_compute_blas_threshold = 0).

Finally the service path: GalleryIndex.rank(top=3) on the flat index (exact), as it was before re-scoring
("truncated": members scored from the 1024 nearest faces only), on the index lookalike.index.ann builds at that
size with its settings, marked "(service)" (from 200k faces the PQ fast scan + exact re-rank; --service-pq
alternatives), and on the HNSW graph with the M and efConstruction the service used before it (--service-ef
settings; built once above, or with --service-build by lookalike.index.ann.build): p50/p95 latency and the share
of the exact top-3 members it returns.

    .venv/bin/python bench/index_search.py                      # 10k, 100k, 1M (about 20 minutes on 2 cores)
    .venv/bin/python bench/index_search.py --quick              # 10k and 100k, fewer queries and settings
    .venv/bin/python bench/index_search.py --sizes 100k --hnsw 32:80,32:200,48:200 --ef 256,512,1024
    .venv/bin/python bench/index_search.py --from-json bench/results/index_search.json   # reprint the tables
    # exhaustive 4-bit PQ fast scan + exact re-rank, on one thread and on 2 shards in 2 threads, without the rest:
    .venv/bin/python bench/index_search.py --sizes 100k,1M --hnsw "" --ivf-max 0 --no-service --build-threads 1 \
        --refine "PQ128x4fs@1;PCA192,PQ96x4fs@1;PCA192,PQ96x4fs@2" --k-factor 50,100,200
    # rank() alone at 1M on the service's index (PQ fast scan from 200k faces), alternatives, a rebuild check:
    .venv/bin/python bench/index_search.py --sizes 1M --service-only --check-rebuild --service-pq 1024:256,2048:512

Writes bench/results/index_search.json. Needs the shared face set (/work/shared/data/faces) or a cached
bench/results/real_embeddings.npz; the buffalo_s models only when the embeddings are not cached yet.
"""

from __future__ import annotations

import os

# One query per core, as on a loaded server: faiss runs with --search-threads (default 1) OpenMP threads, and numpy's
# OpenBLAS (used by GalleryIndex.rank's re-scoring) with one thread; its spinning threads cost 10x on a busy machine.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import gc
import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic_gallery import (
    FACES,
    RESULTS,
    FaceModel,
    Floats,
    Ints,
    load_real_faces,
    realism_report,
    split_people,
)

from lookalike.index import ann
from lookalike.index.calibration import Calibration, calibrate
from lookalike.index.gallery import GalleryIndex, MemberInfo
from lookalike.index.scoring import member_scores

TOP_K = 10
MEMBER_TOP_K = 3
TOP_MEMBERS = 3
BATCH = 8


def parse_size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("km")) * scale)


def label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1_000}k" if n % 1_000 == 0 else str(n)


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def index_bytes(index: faiss.Index) -> int:
    """Serialized size, counted through a callback writer (no copy of a 2 GB index in memory or on disk); of an
    IndexShards (not serializable), the sum of its shards."""
    if isinstance(index, faiss.IndexShards):
        return sum(index_bytes(faiss.downcast_index(index.at(i))) for i in range(index.count()))
    total = [0]

    def count(chunk: bytes) -> int:
        total[0] += len(chunk)
        return len(chunk)

    faiss.write_index(index, faiss.PyCallbackIOWriter(count))
    return total[0]


def pct(times: Sequence[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(times) * 1000, q)), 3) if len(times) else float("nan")


# --------------------------------------------------------------------------- ground truth


@dataclass
class Truth:
    top: Ints  # (nq, TOP_K) exact nearest faces
    members: list[list[int]]  # exact top members per query


def exact_truth(emb: Floats, ids: Ints, queries: Floats) -> Truth:
    """Brute force in numpy (independent of the code under test). Member ranking: the best 20000 faces decide,
    checked to be enough (the 3rd member's exact score must beat every face left out), else all faces."""
    tops, members = [], []
    counts = np.bincount(ids)
    for start in range(0, len(queries), 16):
        sims = queries[start : start + 16] @ emb.T
        for row in sims:
            cut = min(len(row), 20_000)
            part = np.argpartition(-row, cut - 1)[:cut]
            part = part[np.argsort(-row[part], kind="stable")]
            tops.append(part[:TOP_K])
            floor = row[part[-1]] if cut < len(row) else -np.inf
            m_ids, scores, _ = member_scores(row[part], ids[part], k=MEMBER_TOP_K)
            got = np.bincount(ids[part], minlength=len(counts))[m_ids]
            ok = got >= np.minimum(MEMBER_TOP_K, counts[m_ids])
            m_ids, scores = m_ids[ok], scores[ok]
            if len(scores) < TOP_MEMBERS or scores[TOP_MEMBERS - 1] < floor:
                m_ids, scores, _ = member_scores(row, ids, k=MEMBER_TOP_K)
            members.append([int(m) for m in m_ids[:TOP_MEMBERS]])
    return Truth(np.stack(tops), members)


def recall(found: npt.NDArray[np.int64], truth: Ints) -> float:
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / len(t) for f, t in zip(found, truth, strict=True)]))


# --------------------------------------------------------------------------- timing

Search = Callable[[Floats], tuple[Any, Any]]


def time_single(search: Search, queries: Floats, ref: Search | None, ref_every: int) -> dict[str, Any]:
    """One query at a time; the reference (flat) is timed on every `ref_every`-th query, interleaved."""
    times, ref_times, found = [], [], []
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        _, pos = search(q[None, :])
        times.append(time.perf_counter() - t0)
        found.append(pos[0, :TOP_K])
        if ref is not None and i % ref_every == 0:
            t0 = time.perf_counter()
            ref(q[None, :])
            ref_times.append(time.perf_counter() - t0)
    out: dict[str, Any] = {"p50_ms": pct(times, 50), "p95_ms": pct(times, 95), "found": np.stack(found)}
    if ref is not None:
        out.update(ref_p50_ms=pct(ref_times, 50), ref_p95_ms=pct(ref_times, 95), ref_n=len(ref_times))
    return out


def time_batch(search: Search, queries: Floats, ref: Search | None, ref_every: int) -> dict[str, Any]:
    """Batches of BATCH queries; per-query time = batch time / BATCH."""
    times, ref_times = [], []
    for b, start in enumerate(range(0, len(queries) - BATCH + 1, BATCH)):
        x = queries[start : start + BATCH]
        t0 = time.perf_counter()
        search(x)
        times.append((time.perf_counter() - t0) / BATCH)
        if ref is not None and b % ref_every == 0:
            t0 = time.perf_counter()
            ref(x)
            ref_times.append((time.perf_counter() - t0) / BATCH)
    out: dict[str, Any] = {"batch_p50_ms": pct(times, 50)}
    if ref is not None:
        out["ref_batch_p50_ms"] = pct(ref_times, 50)
    return out


def blas_crossover(flat: faiss.Index, queries: Floats, every: int, default: int) -> dict[str, Any]:
    """Flat search per query in batches of 1, 2, 4 and 8: faiss's own SIMD loop (default threshold) vs BLAS."""
    out: dict[str, Any] = {}
    line = []
    for batch in (1, 2, 4, 8):
        runs = [queries[i : i + batch] for i in range(0, len(queries) - batch + 1, batch)][:: every * 8 // batch or 1]
        per: dict[str, list[float]] = {"simd": [], "blas": []}
        for x in runs:
            for name, threshold in (("simd", 10**9), ("blas", 0)):
                faiss.cvar.distance_compute_blas_threshold = threshold
                t0 = time.perf_counter()
                flat.search(x, TOP_K)
                per[name].append((time.perf_counter() - t0) / batch)
        out[str(batch)] = {name: pct(v, 50) for name, v in per.items()} | {"n": len(runs)}
        line.append(f"{batch}: {out[str(batch)]['simd']} vs {out[str(batch)]['blas']}")
    faiss.cvar.distance_compute_blas_threshold = default
    print("  flat ms/query by batch size, SIMD loop vs BLAS: " + "; ".join(line), flush=True)
    return out


def flat_search(index: faiss.Index, blas_threshold: int, k: int = TOP_K) -> Search:
    def run(x: Floats) -> tuple[Any, Any]:
        faiss.cvar.distance_compute_blas_threshold = blas_threshold
        return index.search(x, k)

    return run


# --------------------------------------------------------------------------- configurations


@dataclass
class Config:
    name: str
    make: Callable[[int], faiss.Index]
    settings: list[tuple[str, Any]]  # (label, faiss search parameters)
    train: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    build: Callable[[Floats], faiss.Index] | None = None  # instead of make, train and add
    keep: list[Any] = field(default_factory=list)  # nested search parameters (SWIG holds no reference to them)


def hnsw_config(m: int, ef_construction: int, efs: Sequence[int]) -> Config:
    def make(d: int) -> faiss.Index:
        index = faiss.IndexHNSWFlat(d, m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        return index

    return Config(
        f"HNSW M={m} efC={ef_construction}",
        make,
        [(f"efSearch={ef}", faiss.SearchParametersHNSW(efSearch=ef)) for ef in efs],
        info={"type": "IndexHNSWFlat", "M": m, "efConstruction": ef_construction},
    )


def ivf_config(nlist: int, nprobes: Sequence[int]) -> Config:
    def make(d: int) -> faiss.Index:
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.spherical = True
        return index

    return Config(
        f"IVF nlist={nlist}",
        make,
        [(f"nprobe={p}", faiss.SearchParametersIVF(nprobe=p)) for p in nprobes if p <= nlist],
        train=True,
        info={"type": "IndexIVFFlat", "nlist": nlist},
    )


def refine_config(spec: str, shards: int, k_factors: Sequence[int], seed: int) -> Config:
    """Compressed codes scanned exhaustively (a faiss factory string, e.g. PCA192,PQ96x4fs: 4-bit PQ fast scan),
    the k_factor * 10 best re-ranked with exact inner products (IndexRefineFlat keeps the float vectors). With
    `shards` > 1 the faces are split into that many contiguous shards searched in parallel threads (IndexShards),
    each returning its own top 10 after its own re-ranking; one query then uses `shards` cores. A graph base (e.g.
    PCA128,HNSW32) searches with efSearch = k_factor * 10 (faiss does not raise efSearch to k by itself)."""
    graph = "HNSW" in spec
    keep: list[Any] = []
    settings = []
    for kf in k_factors:
        base: Any = None
        if graph:
            base = faiss.SearchParametersHNSW(efSearch=kf * TOP_K)
            if "," in spec:  # a transform (PCA) before the graph
                keep.append(base)
                base = faiss.SearchParametersPreTransform(index_params=base)
            keep.append(base)
        label = f"k_factor={kf}" + (f", efSearch={kf * TOP_K}" if graph else "")
        settings.append((label, faiss.IndexRefineSearchParameters(k_factor=kf, base_index_params=base)))

    def build(emb: Floats) -> faiss.Index:
        d = emb.shape[1]
        sample = emb[np.random.default_rng(seed).choice(len(emb), min(len(emb), 100_000), replace=False)]
        trained = faiss.index_factory(d, spec, faiss.METRIC_INNER_PRODUCT)
        inner = faiss.downcast_index(trained.index) if isinstance(trained, faiss.IndexPreTransform) else trained
        if isinstance(inner, faiss.IndexHNSW):  # a graph over the codes (e.g. PCA128,HNSW32): the service's effort
            inner.hnsw.efConstruction = ann.HNSW_EF_CONSTRUCTION
        trained.train(sample)
        parts = []
        for s in range(shards):
            part = faiss.IndexRefineFlat(faiss.clone_index(trained))
            part.add(emb[s * len(emb) // shards : (s + 1) * len(emb) // shards])
            parts.append(part)
        if shards == 1:
            return parts[0]
        index = faiss.IndexShards(d, True, True)  # threaded, ids successive over the shards
        for part in parts:
            index.add_shard(part)  # the Python wrapper keeps a reference to each shard
        return index

    return Config(
        f"{spec} + exact re-rank" + (f", {shards} shards ({shards} threads)" if shards > 1 else ""),
        lambda _d: faiss.IndexFlatIP(_d),  # unused: build replaces make/train/add
        settings,
        info={"type": "IndexRefineFlat", "base": spec, "shards": shards},
        build=build,
        keep=keep,
    )


# --------------------------------------------------------------------------- one size


def run_size(
    n: int,
    model: FaceModel,
    held_out: Floats,
    args: argparse.Namespace,
    rng: np.random.Generator,
    rows: list[dict[str, Any]],
) -> dict[str, Any]:
    print(f"\n== {label(n)} faces", flush=True)
    t0 = time.perf_counter()
    emb, ids, people = model.gallery(n, rng)
    n_q = min(args.queries, len(held_out))
    kinds = {
        "no-match": held_out[rng.permutation(len(held_out))[:n_q]],
        "genuine": model.photos(people, rng.choice(ids, args.queries), rng),
    }
    print(f"  gallery: {len(people[0])} identities, generated in {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    truth = {kind: exact_truth(emb, ids, q) for kind, q in kinds.items()}
    print(f"  exact ground truth in {time.perf_counter() - t0:.1f} s", flush=True)
    # Flat reference per setting: every query up to 200k faces, about 40 per kind at 1M (flat search is slow).
    ref_every = max(1, int(np.ceil(args.queries * n / 40e6)))
    size: dict[str, Any] = {"faces": n, "identities": len(people[0]), "queries": {k: len(v) for k, v in kinds.items()}}

    gc.collect()
    rss0 = rss_mb()
    t0 = time.perf_counter()
    flat = faiss.IndexFlatIP(emb.shape[1])
    flat.add(emb)
    flat_build = time.perf_counter() - t0
    flat_rss = rss_mb() - rss0
    flat_info = {"build_s": round(flat_build, 2), "index_mb": round(index_bytes(flat) / 2**20, 1)}
    flat_info["rss_delta_mb"] = round(flat_rss, 1)
    if args.service_only:
        faiss.omp_set_num_threads(args.search_threads)
        size["service"] = service_rank(n, emb, ids, kinds, truth, flat, args, None, {})
        return size
    default_threshold = args.default_blas_threshold
    flat_default = flat_search(flat, default_threshold)
    flat_blas = flat_search(flat, 0)
    for kind, queries in kinds.items():
        sub = queries[::ref_every]
        single_default = time_single(flat_default, sub, flat_blas, 1)
        batch = time_batch(flat_default, queries[: max(BATCH, len(sub))], flat_blas, 1)
        row = {
            "faces": n,
            "query": kind,
            "index": "Flat",
            "setting": "exact",
            "recall@10": recall(single_default["found"], truth[kind].top[::ref_every]),
            "p50_ms": single_default["p50_ms"],
            "p95_ms": single_default["p95_ms"],
            "batch8_ms": batch["batch_p50_ms"],
            "blas0_p50_ms": single_default["ref_p50_ms"],
            "blas0_batch8_ms": batch["ref_batch_p50_ms"],
            "n_timed": len(sub),
            **flat_info,
        }
        rows.append(row)
        print(
            f"  Flat {kind}: single p50 {row['p50_ms']} ms (BLAS forced {row['blas0_p50_ms']}), "
            f"batch of 8 {row['batch8_ms']} ms/query (BLAS forced {row['blas0_batch8_ms']})",
            flush=True,
        )
    size["blas_crossover"] = blas_crossover(flat, kinds["no-match"], max(1, ref_every // 2), default_threshold)
    # The flat reference for approximate rows: the faster of the two paths for each mode, as the service uses.
    ref_single = flat_default
    ref_batch = flat_blas

    configs = [hnsw_config(m, efc, args.ef) for m, efc in args.hnsw]
    if n <= args.ivf_max:
        nlist = int(args.ivf_factor * np.sqrt(n))
        configs.append(ivf_config(nlist, args.nprobe))
    configs += [refine_config(spec, shards, args.k_factor, args.seed + 1) for spec, shards in args.refine]
    faiss.omp_set_num_threads(args.build_threads)
    service_index: faiss.Index | None = None
    service_build: dict[str, Any] = {}
    for config in configs:
        gc.collect()
        rss0 = rss_mb()
        t0 = time.perf_counter()
        if config.build is not None:
            index = config.build(emb)
        else:
            index = config.make(emb.shape[1])
            if config.train:
                index.train(emb[rng.choice(n, min(n, 64 * index.nlist), replace=False)])
            index.add(emb)
        build = time.perf_counter() - t0
        info = {
            **config.info,
            "build_s": round(build, 2),
            "build_threads": args.build_threads,
            "index_mb": round(index_bytes(index) / 2**20, 1),
            "rss_delta_mb": round(rss_mb() - rss0, 1),
        }
        print(f"  {config.name}: built in {build:.1f} s, {info['index_mb']} MB", flush=True)
        faiss.omp_set_num_threads(args.search_threads)
        for setting, params in config.settings:

            def search(x: Floats, index: faiss.Index = index, params: Any = params) -> tuple[Any, Any]:
                return index.search(x, TOP_K, params=params)

            for kind, queries in kinds.items():
                single = time_single(search, queries, ref_single, ref_every)
                batch = time_batch(search, queries, ref_batch, ref_every)
                row = {
                    "faces": n,
                    "query": kind,
                    "index": config.name,
                    "setting": setting,
                    "recall@10": recall(single["found"], truth[kind].top),
                    "p50_ms": single["p50_ms"],
                    "p95_ms": single["p95_ms"],
                    "batch8_ms": batch["batch_p50_ms"],
                    "flat_p50_ms": single["ref_p50_ms"],
                    "flat_p95_ms": single["ref_p95_ms"],
                    "flat_batch8_ms": batch["ref_batch_p50_ms"],
                    "n_timed": len(queries),
                    "flat_n_timed": single["ref_n"],
                    **info,
                }
                rows.append(row)
                print(
                    f"    {setting:>14} {kind:>8}: recall@10 {row['recall@10']:.4f}  p50 {row['p50_ms']:.3f} ms  "
                    f"p95 {row['p95_ms']:.3f} ms  batch8 {row['batch8_ms']:.3f} ms/q  | flat p50 {row['flat_p50_ms']} "
                    f"ms, batch8 {row['flat_batch8_ms']} ms/q",
                    flush=True,
                )
        faiss.omp_set_num_threads(args.build_threads)
        if config.info.get("M") == ann.HNSW_M and config.info.get("efConstruction") == ann.HNSW_EF_CONSTRUCTION:
            service_index, service_build = index, info  # the service's parameters: reused below
        del index
    faiss.omp_set_num_threads(args.search_threads)
    if not args.no_service:
        size["service"] = service_rank(n, emb, ids, kinds, truth, flat, args, service_index, service_build)
    del flat, service_index
    return size


def service_rank(
    n: int,
    emb: Floats,
    ids: Ints,
    kinds: dict[str, Floats],
    truth: dict[str, Truth],
    flat: faiss.Index,
    args: argparse.Namespace,
    built: faiss.Index | None,
    built_info: dict[str, Any],
) -> dict[str, Any]:
    """GalleryIndex.rank(top=3) on the index lookalike.index.ann builds at this size (with the service's search
    settings, then the --service-pq alternatives), on an HNSW graph built above with the service's M and
    efConstruction (`built`; its --service-ef settings), and on the flat index (exact: the reference). For the PQ
    index also recall@10 and latency of ann.search itself (10 nearest faces, the service's candidates)."""
    members = {int(m): MemberInfo(id=int(m), slug=f"m{m}", name=f"m{m}", group="bench") for m in np.unique(ids)}
    calibration = _dummy_calibration()
    chosen = ann.choose(n)
    out: dict[str, Any] = {"chosen": chosen}
    photo_ids = np.arange(n, dtype=np.int64)
    exact = GalleryIndex(1, "bench", "buffalo_s", flat, ids, photo_ids, members, calibration, MEMBER_TOP_K)
    runs: list[tuple[str, GalleryIndex, int, int]] = [("flat", exact, 0, 0), ("truncated", exact, 0, 0)]
    if args.service_build and built is None:
        faiss.omp_set_num_threads(args.build_threads)
        t0 = time.perf_counter()
        built = ann.build(emb, approx_from=0, approx="hnsw")  # as the service built it before the PQ index
        out["hnsw_build_s"], out["hnsw_build_threads"] = round(time.perf_counter() - t0, 2), args.build_threads
        faiss.omp_set_num_threads(args.search_threads)
    elif built is not None:  # built above with the same parameters and threads: the same graph
        out["hnsw_build_s"], out["hnsw_build_threads"] = built_info["build_s"], built_info["build_threads"]
    if built is not None:
        approx = GalleryIndex(1, "bench", "buffalo_s", built, ids, photo_ids, members, calibration, MEMBER_TOP_K)
        service = (ann.ef_search(n), ann.neighbours(n, "hnsw"))  # HNSW's own settings at this size
        settings = [service] + [s for s in args.service_ef if s != service]
        runs += [("hnsw", approx, ef, nb) for ef, nb in settings]
    pq_index: faiss.Index | None = None
    if chosen == "pqrefine" or args.service_pq_always:
        faiss.omp_set_num_threads(args.build_threads)  # ann builds it on one thread whatever this says
        t0 = time.perf_counter()
        pq_index = ann.build(emb, approx_from=0, approx="pqrefine")  # as the service builds it
        out["pq_build_s"] = round(time.perf_counter() - t0, 2)
        out["pq_index_mb"] = round(index_bytes(pq_index) / 2**20, 1)
        print(
            f"  pqrefine ({ann.pq_factory(emb.shape[1])} + exact re-rank): built in {out['pq_build_s']} s, "
            f"{out['pq_index_mb']} MB",
            flush=True,
        )
        faiss.omp_set_num_threads(args.search_threads)
        pq = GalleryIndex(1, "bench", "buffalo_s", pq_index, ids, photo_ids, members, calibration, MEMBER_TOP_K)
        service = (ann.PQ_CANDIDATES, ann.neighbours(n, "pqrefine"))
        settings = [service] + [s for s in args.service_pq if s != service]
        runs += [("pqrefine", pq, cand, nb) for cand, nb in settings]
        out["search"] = pq_search_rows(pq_index, kinds, truth)
        if args.check_rebuild:
            out["rebuild_identical"] = check_rebuild(emb, pq_index, kinds)
    print(f"  service rank(top=3), index chosen by lookalike.index.ann: {chosen}", flush=True)
    defaults = ann.ef_search, ann.neighbours, ann.PQ_CANDIDATES
    service_setting = {
        "hnsw": (defaults[0](n), defaults[1](n, "hnsw")),
        "pqrefine": (defaults[2], defaults[1](n, "pqrefine")),
    }
    rows = []
    for name, g, ef, nb in runs:  # ef: efSearch (hnsw) or candidates re-ranked (pqrefine)
        if name == "hnsw":  # pinned for this run (GalleryIndex.rank asks index.ann for both)
            ann.ef_search, ann.neighbours = (lambda _n, v=ef: v), (lambda *_a, v=nb: v)  # type: ignore[misc]
        if name == "pqrefine":
            ann.PQ_CANDIDATES, ann.neighbours = ef, (lambda *_a, v=nb: v)  # type: ignore[misc,assignment]
        g.rank(kinds["genuine"][:1], top=TOP_MEMBERS)  # builds the member table once
        step = 1 if name in ("hnsw", "pqrefine") or n <= 100_000 else max(1, n // 50_000)  # flat is slow at 1M
        for kind, queries in kinds.items():
            times, agree = [], []
            for q, expected in zip(queries[::step], truth[kind].members[::step], strict=True):
                t0 = time.perf_counter()
                if name == "truncated":
                    got_ids = truncated_rank(flat, ids, q)
                else:
                    got_ids = [s.member.id for s in g.rank(q[None, :], top=TOP_MEMBERS)[0]]
                times.append(time.perf_counter() - t0)
                agree.append(len(set(got_ids) & set(expected)) / len(expected))
            row = {
                "index": name,
                "service_setting": chosen == name and (ef, nb) == service_setting.get(name),
                "efSearch": ef if name == "hnsw" else None,
                "candidates": ef if name == "pqrefine" else None,
                "neighbours": nb if name in ("hnsw", "pqrefine") else None,
                "query": kind,
                "p50_ms": pct(times, 50),
                "p95_ms": pct(times, 95),
                "top3_member_agreement": round(float(np.mean(agree)), 4),
                "n": len(times),
            }
            rows.append(row)
            setting = {
                "hnsw": f"efSearch={ef} neighbours={nb}",
                "pqrefine": f"candidates={ef} neighbours={nb}",
                "flat": "exact",
                "truncated": "1024 nearest",
            }[name]
            print(
                f"    {name:>8} {setting:>30} {kind:>8}: rank p50 {row['p50_ms']} ms  p95 {row['p95_ms']} ms  "
                f"top-3 members as exact {row['top3_member_agreement']:.4f}  (n={row['n']})",
                flush=True,
            )
        ann.ef_search, ann.neighbours, ann.PQ_CANDIDATES = defaults  # type: ignore[misc]
    out["rows"] = rows
    return out


def check_rebuild(emb: Floats, index: faiss.Index, kinds: dict[str, Floats]) -> bool:
    """Build the PQ index again with faiss set to one thread (the first build ran with --build-threads set): the
    same codes and PCA (serialized base) and the same search results (similarities and positions, 512 neighbours)
    for every query."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    t0 = time.perf_counter()
    try:
        again = ann.build(emb, approx_from=0, approx="pqrefine")
    finally:
        faiss.omp_set_num_threads(threads)
    build_s = time.perf_counter() - t0
    same = bool(
        np.array_equal(
            faiss.serialize_index(faiss.downcast_index(again.base_index)),
            faiss.serialize_index(faiss.downcast_index(index.base_index)),
        )
    )
    for queries in kinds.values():
        for a, b in zip(ann.search(again, queries, 512), ann.search(index, queries, 512), strict=True):
            same = same and bool(np.array_equal(a, b))
    print(f"  pqrefine rebuilt on 1 thread in {build_s:.1f} s: identical codes and results: {same}", flush=True)
    return same


def pq_search_rows(index: faiss.Index, kinds: dict[str, Floats], truth: dict[str, Truth]) -> list[dict[str, Any]]:
    """recall@10 and latency of ann.search(k=10) on the PQ index with the service's candidate count."""
    rows = []
    for kind, queries in kinds.items():
        single = time_single(lambda x: ann.search(index, x, TOP_K), queries, None, 1)
        row = {
            "query": kind,
            "candidates": ann.PQ_CANDIDATES,
            "recall@10": round(recall(single["found"], truth[kind].top), 4),
            "p50_ms": single["p50_ms"],
            "p95_ms": single["p95_ms"],
        }
        rows.append(row)
        print(
            f"    ann.search k=10, {ann.PQ_CANDIDATES} candidates, {kind}: recall@10 {row['recall@10']:.4f}  "
            f"p50 {row['p50_ms']} ms  p95 {row['p95_ms']} ms",
            flush=True,
        )
    return rows


def truncated_rank(flat: faiss.Index, ids: Ints, q: Floats, k: int = 1024) -> list[int]:
    """rank() as it was before re-scoring beyond 20k faces: member scores from the k nearest faces only."""
    sims, pos = flat.search(q[None, :], min(k, flat.ntotal))
    m_ids, _, _ = member_scores(sims[0], ids[pos[0]], k=MEMBER_TOP_K)
    return [int(m) for m in m_ids[:TOP_MEMBERS]]


def _dummy_calibration() -> Calibration:
    """A calibration is required by GalleryIndex; rank() only maps scores with it (not measured here)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return calibrate(
        x, np.repeat(np.arange(10), 4).astype(np.int64), k=3, target_fmr=0.01, lookalike_quantile=0.5
    ).calibration


# --------------------------------------------------------------------------- report


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        "\n| faces | query | index | setting | recall@10 | p50 ms | p95 ms | batch-8 ms/q | flat p50 ms | "
        "flat batch-8 ms/q | build s | index MB | RSS +MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        flat_p50 = r.get("flat_p50_ms", r.get("p50_ms"))
        flat_b8 = r.get("flat_batch8_ms", r.get("blas0_batch8_ms"))
        print(
            f"| {label(r['faces'])} | {r['query']} | {r['index']} | {r['setting']} | {r['recall@10']:.4f} | "
            f"{r['p50_ms']:.3f} | {r['p95_ms']:.3f} | {r['batch8_ms']:.3f} | {flat_p50} | {flat_b8} | "
            f"{r['build_s']} | {r['index_mb']} | {r['rss_delta_mb']} |"
        )


def print_service_table(sizes: list[dict[str, Any]]) -> None:
    print(
        "\n| faces | rank() on | setting | no-match: top-3 as exact | p50 ms | p95 ms | "
        "genuine: top-3 as exact | p50 ms | p95 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for size in sizes:
        if "service" not in size:
            continue
        rows = size["service"]["rows"]

        def key(r: dict[str, Any]) -> tuple[Any, ...]:
            return r["index"], r["efSearch"], r.get("candidates"), r["neighbours"]

        for index, ef, cand, nb in dict.fromkeys(key(r) for r in rows):
            pair = {r["query"]: r for r in rows if key(r) == (index, ef, cand, nb)}
            setting = {
                "flat": "exact",
                "truncated": "1024 nearest only (before)",
                "pqrefine": f"{cand} re-ranked, {nb} nearest",
            }.get(index, f"efSearch={ef}, {nb} nearest")
            chosen = size["service"]["chosen"]
            if index == chosen and (chosen == "flat" or any(r.get("service_setting") for r in pair.values())):
                setting += " **(service)**"
            cells = " | ".join(
                f"{r['top3_member_agreement']:.3f} | {r['p50_ms']} | {r['p95_ms']}" for r in pair.values()
            )
            print(f"| {label(size['faces'])} | {index} | {setting} | {cells} |")


def print_summary(rows: list[dict[str, Any]], target: float) -> list[dict[str, Any]]:
    """Per size and approximate index, the cheapest setting with recall@10 >= target for both query kinds."""
    out = []
    print(f"\ncheapest setting with recall@10 >= {target} for both query kinds:")
    keys = sorted({(r["faces"], r["index"]) for r in rows if r["index"] != "Flat"})
    for faces, index in keys:
        mine = [r for r in rows if r["faces"] == faces and r["index"] == index]
        for setting in dict.fromkeys(r["setting"] for r in mine):
            pair = {r["query"]: r for r in mine if r["setting"] == setting}
            if all(r["recall@10"] >= target for r in pair.values()):
                line = {"faces": faces, "index": index, "setting": setting}
                for kind, r in pair.items():
                    line[kind] = {k: r[k] for k in ("recall@10", "p50_ms", "p95_ms", "flat_p50_ms")}
                out.append(line)
                print(
                    f"  {label(faces)} {index} {setting}: "
                    + "; ".join(
                        f"{k} recall {r['recall@10']:.4f} p50 {r['p50_ms']} ms (flat {r['flat_p50_ms']} ms)"
                        for k, r in pair.items()
                    )
                )
                break
        else:
            print(f"  {label(faces)} {index}: no setting reaches it")
    return out


def machine() -> dict[str, Any]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "faiss": faiss.__version__,
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10k,100k,1M", help="gallery sizes in faces, e.g. 10k,100k,1M")
    ap.add_argument("--queries", type=int, default=200, help="queries per kind (no-match: at most the held-out photos)")
    ap.add_argument("--quick", action="store_true", help="10k and 100k, 60 queries, fewer settings")
    ap.add_argument("--faces", type=Path, default=FACES, help="the real face set (gallery/, east_asian/)")
    ap.add_argument("--hnsw", default="32:200", help="HNSW configurations M:efConstruction, comma-separated")
    ap.add_argument("--ef", default="64,128,256,512,1024,2048", help="efSearch values")
    ap.add_argument("--nprobe", default="16,64,256", help="IVF nprobe values")
    ap.add_argument("--ivf-factor", type=float, default=4.0, help="IVF nlist = factor * sqrt(faces)")
    ap.add_argument("--ivf-max", default="100k", help="largest gallery IVF is tried on (0: never)")
    ap.add_argument("--search-threads", type=int, default=1, help="faiss OpenMP threads while searching")
    ap.add_argument("--build-threads", type=int, default=os.cpu_count() or 1, help="... while building")
    ap.add_argument("--service-build", action="store_true", help="time the service's own one-thread HNSW build")
    ap.add_argument(
        "--service-ef", default="256:256,1024:256", help="other efSearch:neighbours settings tried on rank()"
    )
    ap.add_argument(
        "--refine",
        default="",
        help="exhaustive compressed scan + exact re-rank: faiss factory strings, each with @shards (threads), "
        "';'-separated, e.g. 'PQ128x4fs@1;PCA192,PQ96x4fs@2' (default: none)",
    )
    ap.add_argument("--k-factor", default="50,100,200", help="re-ranked candidates per result for --refine")
    ap.add_argument("--no-service", action="store_true", help="skip the GalleryIndex.rank() measurements")
    ap.add_argument(
        "--service-only",
        action="store_true",
        help="only the exact truth and the GalleryIndex.rank() rows (flat, and the index the service builds)",
    )
    ap.add_argument(
        "--service-pq",
        default="4096:256,2048:512,4096:512",
        help="other candidates:neighbours settings tried on rank() on the PQ index (ann.PQ_CANDIDATES re-ranked)",
    )
    ap.add_argument("--service-pq-always", action="store_true", help="the PQ index's rank() rows at every size")
    ap.add_argument("--check-rebuild", action="store_true", help="rebuild the PQ index on 1 thread and compare")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS / "index_search.json")
    ap.add_argument("--from-json", type=Path, help="only print the tables of an earlier run's JSON")
    args = ap.parse_args(argv)
    if args.from_json is not None:
        saved = json.loads(args.from_json.read_text())
        print(f"machine: {saved['machine']}")
        print_table(saved["rows"])
        print_service_table(saved["sizes"])
        print_summary(saved["rows"], 0.98)
        return 0
    if args.quick:
        args.sizes, args.queries = "10k,100k", min(args.queries, 60)
        args.ef, args.nprobe = "128,512,1024", "64,256"
    sizes = [parse_size(s) for s in args.sizes.split(",") if s]
    args.hnsw = [tuple(int(v) for v in c.split(":")) for c in args.hnsw.split(",") if c]
    args.ef = [int(v) for v in args.ef.split(",") if v]
    args.nprobe = [int(v) for v in args.nprobe.split(",") if v]
    args.ivf_max = parse_size(args.ivf_max)
    args.refine = [(c.split("@")[0], int(c.split("@")[1]) if "@" in c else 1) for c in args.refine.split(";") if c]
    args.k_factor = [int(v) for v in args.k_factor.split(",") if v]
    args.service_ef = [tuple(int(v) for v in c.split(":")) for c in args.service_ef.split(",") if c]
    args.service_pq = [tuple(int(v) for v in c.split(":")) for c in args.service_pq.split(",") if c]
    args.default_blas_threshold = faiss.cvar.distance_compute_blas_threshold
    started = time.perf_counter()
    info = machine()
    print(f"machine: {info['nproc']} CPUs, {info['cpu']}, faiss {info['faiss']}, load {info['load_average_at_start']}")
    print(f"faiss default distance_compute_blas_threshold: {args.default_blas_threshold}")

    rng = np.random.default_rng(args.seed)
    real = load_real_faces(args.faces)
    model_people, held_out = split_people(real)
    model = FaceModel.from_real(model_people)
    model.fit(model_people, rng)
    realism = realism_report(model, model_people, held_out, rng)

    faiss.omp_set_num_threads(args.search_threads)
    rows: list[dict[str, Any]] = []
    per_size = [run_size(n, model, held_out.emb, args, rng, rows) for n in sizes]
    print_table(rows)
    print_service_table(per_size)
    cheapest = print_summary(rows, 0.98)
    total = time.perf_counter() - started
    print(f"\ntotal {total / 60:.1f} min")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": info,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "realism": realism,
        "rows": [{k: v for k, v in r.items()} for r in rows],
        "sizes": per_size,
        "cheapest_at_0.98": cheapest,
        "load_average_at_end": os.getloadavg(),
        "ann": {
            "approx_from": ann.APPROX_FROM,
            "M": ann.HNSW_M,
            "efConstruction": ann.HNSW_EF_CONSTRUCTION,
            "efSearch": {label(n): ann.ef_search(n) for n in sizes},
            "neighbours": {label(n): ann.neighbours(n, ann.choose(n)) for n in sizes},
            "approx_kind": ann.APPROX_KIND,
            "pq_factory_512": ann.pq_factory(512),
            "pq_candidates": ann.PQ_CANDIDATES,
            "pq_train_max": ann.PQ_TRAIN_MAX,
        },
        "total_s": round(total, 1),
    }
    args.out.write_text(json.dumps(report, indent=2, default=float))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
