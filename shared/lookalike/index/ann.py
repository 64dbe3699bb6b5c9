"""Which FAISS index a gallery gets, by its size, and how each kind is searched.

Below APPROX_FROM faces an exact IndexFlatIP; from it on an HNSW graph (IndexHNSWFlat, inner product; the float
vectors are kept, so similarities and reconstructed vectors stay exact). The figures come from
bench/index_search.py (docs/benchmarks.md, "Index search"): 2-core AMD EPYC VM shared with other jobs, faiss-cpu
1.15.1, one query at a time on one core, synthetic galleries modelled on real buffalo_s embeddings, 200 no-match
queries (real faces of people not in the gallery: the lookalike case) and 200 genuine ones. rank(top=3) p50 and
share of the exact top-3 members found:

| faces | flat (exact) | efSearch 512, 256 nearest | efSearch 1024, 256 nearest | efSearch 2048, 512 nearest |
|---|---|---|---|---|
| 100k | 7.1 ms | 3.3 ms, 0.998 / 1.000 | 5.3 ms, 1.000 / 1.000 | |
| 1M | 66 ms | 5.3 ms, 0.928 / 0.973 | 9.0 ms, 0.982 / 0.978 | 17.1 ms, 0.995 / 0.990 |

(no-match / genuine). rank() as it was before re-scoring (index.gallery), aggregating the 1024 nearest faces
only, found 0.37 / 0.53 of them at 100k (0.07 / 0.37 on 10 queries at 1M).

* APPROX_FROM = 200k: exact search costs about 0.07 ms per 1000 faces and query (7 ms at 100k, 64-74 ms at 1M),
  so below 200k a face costs at most ~15 ms and the ranking is exact; the graph is approximate and slow to build
  (2 threads: 42 s at 100k, 680-790 s at 1M; one thread: 117 s at 100k), where flat takes a second.
* M = 32, efConstruction = 200: at 100k, efConstruction 200 instead of 80 lifted recall@10 of no-match queries at
  efSearch 256 from 0.81 to 0.88; M = 48 gained < 0.01 at efSearch 512 for 25% more time per query (exploratory
  runs: `bench/index_search.py --sizes 100k --hnsw 32:80,32:200,48:200` repeats them).
* efSearch grows with the gallery (ef_search): 512 up to 250k faces, 512 more per 250k faces, 2048 above 750k
  (measured: 512 keeps 0.998 of the top-3 members at 100k, 2048 keeps 0.99 at 1M). The nearest 256 faces (512
  from efSearch 2048) nominate the members that rank() re-scores exactly. efSearch is raised to k where a
  search asks for more neighbours (faiss returns at most efSearch results). The parameters travel with each search
  (SearchParametersHNSW): the shared index is never mutated and needs no lock.
* Memory: the graph adds 13% to the vectors (2213 MB vs 1953 MB at 1M).
* IVF (IndexIVFFlat, 4 sqrt(n) lists, spherical k-means) is not used: the faces of one person spread over many
  lists, so at 100k even nprobe 256 of 1264 found only 0.92 / 0.77 of the 10 nearest faces.

Recall@10 of the photos themselves stays below the issue's target at 1M (>= 0.98 within 2 ms p50): efSearch 2048
reaches 0.962 / 0.917 in 14 / 12 ms (flat: 64-74 ms); within 2 ms (efSearch 256) it is 0.72 / 0.78. Faces are a
hard case for graph search: a lookalike query is close to nobody, its nearest faces barely nearer than thousands
of others.

Flat search: faiss sends a batch of queries down BLAS only when `queries * d >= distance_compute_blas_threshold`
(default 128000 in faiss-cpu 1.15: 250 queries at d=512). Per query at 100k (1M), faiss's SIMD loop vs BLAS:
1 query 6.5 vs 18.9 ms (64 vs 181); 2: 6.6 vs 9.8 (64 vs 94); 4: 6.5 vs 3.6 (64 vs 42); 8: 6.6 vs 2.2 (64 vs 26).
So BLAS from BLAS_FROM_QUERIES = 4 queries on (photos with several faces).

A version rebuilt from the database (index.builder.rebuild_version) must be byte-identical to the published one,
or its checksum fails and every worker start on a host without the files rebuilds it again. faiss-cpu 1.15 builds
the same HNSW graph on any number of OpenMP threads (checked: 1, 2 and 4 threads on 30k vectors, 2 threads twice on
100k, two 1M bench runs gave the same recalls; tests/index/test_ann.py checks 1 thread against all), so the build
uses every thread.
"""

from __future__ import annotations

from typing import Literal

import faiss
import numpy as np

from lookalike.index.scoring import IntArray
from lookalike.pipeline.types import FloatArray

Kind = Literal["flat", "hnsw"]

APPROX_FROM = 200_000  # faces; below it exact flat search
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 512  # efSearch up to HNSW_EF_STEP faces, and one more HNSW_EF_SEARCH per HNSW_EF_STEP faces
HNSW_EF_STEP = 250_000
HNSW_EF_MAX = 2048
HNSW_NEIGHBOURS = 256  # nearest faces that nominate members for exact re-scoring (index.gallery), per 1024 ef
BLAS_FROM_QUERIES = 4  # flat search of this many queries at once goes through BLAS


def choose(n_faces: int, *, approx_from: int = APPROX_FROM) -> Kind:
    """The index kind for a gallery of `n_faces` faces."""
    return "hnsw" if n_faces >= approx_from else "flat"


def ef_search(n_faces: int) -> int:
    """efSearch for an HNSW graph of `n_faces` faces: 512 up to 250k, 1024 up to 500k, 1536 up to 750k, then 2048."""
    return min(HNSW_EF_MAX, HNSW_EF_SEARCH * max(1, -(-n_faces // HNSW_EF_STEP)))


def neighbours(n_faces: int) -> int:
    """How many nearest faces nominate members on an HNSW graph of `n_faces` faces (256, 512 from efSearch 2048)."""
    return HNSW_NEIGHBOURS * max(1, ef_search(n_faces) // 1024)


def kind_of(index: faiss.Index) -> Kind:
    if isinstance(index, faiss.IndexHNSW):
        return "hnsw"
    if isinstance(index, faiss.IndexFlat):
        return "flat"
    raise TypeError(f"unsupported gallery index {type(index).__name__}")


def build(embeddings: FloatArray, *, approx_from: int = APPROX_FROM) -> faiss.Index:
    """The index for these unit embeddings (rows), chosen by their number."""
    d = int(embeddings.shape[1])
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    if choose(len(x), approx_from=approx_from) == "flat":
        flat = faiss.IndexFlatIP(d)
        if len(x):
            flat.add(x)
        return flat
    index = faiss.IndexHNSWFlat(d, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.hnsw.efSearch = ef_search(len(x))  # stored with the index; searches pass their own (below)
    index.add(x)  # the same graph on any number of threads (see the module docstring)
    return index


def search(index: faiss.Index, queries: FloatArray, k: int) -> tuple[FloatArray, IntArray]:
    """(similarities, positions) of the k nearest faces of each query, best first; position -1 where fewer."""
    x = np.ascontiguousarray(queries, dtype=np.float32)
    if kind_of(index) == "hnsw":
        ef = max(ef_search(index.ntotal), k)
        params = faiss.SearchParametersHNSW(efSearch=ef)  # type: ignore[attr-defined]
        sims, pos = index.search(x, k, params=params)
        return sims, pos
    faiss.cvar.distance_compute_blas_threshold = BLAS_FROM_QUERIES * index.d
    sims, pos = index.search(x, k)
    return sims, pos


def exhaustive(index: faiss.Index) -> bool:
    """Whether searching for every face returns every face with its exact similarity."""
    return kind_of(index) == "flat"


def vectors(index: faiss.Index, positions: IntArray) -> FloatArray:
    """The stored vectors of these faces (exact for both kinds: HNSWFlat keeps the float vectors)."""
    if len(positions) == 0:
        return np.zeros((0, index.d), np.float32)
    out: FloatArray = index.reconstruct_batch(np.ascontiguousarray(positions, dtype=np.int64))
    return out
