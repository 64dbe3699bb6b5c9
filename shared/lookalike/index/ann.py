"""Which FAISS index a gallery gets, by its size, and how each kind is searched.

Below APPROX_FROM faces an exact IndexFlatIP; from it on ("pqrefine") every face's 4-bit PQ code is scanned and
the best candidates re-ranked exactly: IndexRefineFlat over PCA192,PQ96x4fs (PCA to 192 dimensions, 96 4-bit
sub-quantizers, fast scan; 48 bytes per face), the float vectors kept, so returned similarities and reconstructed
vectors are exact. HNSW graphs (IndexHNSWFlat, "hnsw"), which the service built from 200k faces before, still load
and search (older versions) and can be built with approx="hnsw". The figures come from bench/index_search.py
(docs/benchmarks.md, "Index search"): faiss-cpu 1.15.1, one query at a time on one core, synthetic galleries
modelled on real buffalo_s embeddings, 200 no-match queries (real faces of people not in the gallery: the
lookalike case) and 200 genuine ones. rank(top=3) p50 and share of the exact top-3 members found, at 1M faces:

| index | setting | no-match | genuine | build | machine |
|---|---|---|---|---|---|
| flat (exact) | | 66 / 155-164 ms | 76 / 156-158 ms | 1 s | EPYC / loaded Xeon |
| hnsw | efSearch 2048, 512 nearest | 17.1 ms, 0.995 | 15.2 ms, 0.990 | 680-790 s (2 threads) | EPYC |
| pqrefine | 2048 re-ranked, 256 nearest | 7.6 ms, 0.997 | 7.4 ms, 0.990-1.000 | 8-13 s (1 thread) | loaded Xeon |

(two draws of the gallery for pqrefine; the loaded Xeon VM ran flat search 2x slower than the EPYC one.) rank() as
it was before re-scoring (index.gallery), aggregating the 1024 nearest faces only, found 0.37 / 0.53 of them at
100k (0.07-0.27 / 0.33-0.67 on 10 queries at 1M).

* pqrefine: ann.search re-ranks PQ_CANDIDATES = 2048 PQ-nearest faces exactly (k_factor = 2048 / k, at least 1):
  for the 10 nearest faces recall@10 0.988-0.990 / 0.987-0.992 in 3.6-4.0 ms p50 at 1M. rank() asks for
  PQ_NEIGHBOURS = 256 nearest faces, which nominate the members it re-scores exactly over all their photos; 1024
  candidates lost top-3 members (0.977-0.982 of no-match ones), 4096 gained <= 0.003 for 1 ms more, 512 nearest
  faces the same agreement for 1.4-1.8 ms more p50 (but a genuine p95 of 10-11 instead of 21-22 ms: fewer
  searches widened).
  The scan is memory bound (48 MB of codes per query at 1M), the re-rank reads 2048 random 2 KB vectors.
* The PQ index is trained (PCA, then k-means per sub-quantizer) on at most PQ_TRAIN_MAX = 100k faces drawn with
  PQ_SEED, faiss's k-means seeded alike, all on one thread (on two the PCA came out differently from 20k x 512
  on): the same data gives the same bytes (checked on 1M faces in the bench, --check-rebuild, and in
  tests/index/test_ann.py). A build takes 8-13 s at 1M. A gallery needs PQ_MIN_FACES to get one.
* Memory: codes and PCA add 2% to the vectors (2000 MB vs 1953 MB at 1M; HNSW: 2213 MB).
* APPROX_FROM = 200k: exact search costs about 0.07 ms per 1000 faces and query (7 ms at 100k, 64-74 ms at 1M),
  so below 200k a face costs at most ~15 ms and the ranking is exact (at 100k the PQ index took 1.0 ms per search
  at 0.994 / 0.998 recall@10: 200k could come down, not measured through rank() yet).

HNSW (older versions; chosen from 200k before the PQ index): slow to build (2 threads: 42 s at 100k, 680-790 s at
1M; one thread: 117 s at 100k).

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

Recall@10 of the photos themselves stays below the issue's target at 1M (>= 0.98 within 2 ms p50): HNSW at
efSearch 2048 reaches 0.962 / 0.917 in 14 / 12 ms (flat: 64-74 ms), within 2 ms (efSearch 256) 0.72 / 0.78; the PQ
index 0.988-0.990 / 0.987-0.992 in 3.6-4.0 ms on one loaded thread. Faces are a hard case for graph search: a
lookalike query is close to nobody, its nearest faces barely nearer than thousands of others.

Flat search: faiss sends a batch of queries down BLAS only when `queries * d >= distance_compute_blas_threshold`
(default 128000 in faiss-cpu 1.15: 250 queries at d=512). Per query at 100k (1M), faiss's SIMD loop vs BLAS:
1 query 6.5 vs 18.9 ms (64 vs 181); 2: 6.6 vs 9.8 (64 vs 94); 4: 6.5 vs 3.6 (64 vs 42); 8: 6.6 vs 2.2 (64 vs 26).
So BLAS from BLAS_FROM_QUERIES = 4 queries on (photos with several faces).

A version rebuilt from the database (index.builder.rebuild_version) must be byte-identical to the published one,
or its checksum fails and every worker start on a host without the files rebuilds it again (PQ index: seeded,
above). faiss-cpu 1.15 builds the same HNSW graph on any number of OpenMP threads (checked: 1, 2 and 4 threads on
30k vectors, 2 threads twice on 100k, two 1M bench runs gave the same recalls; tests/index/test_ann.py checks 1
thread against all), so the build uses every thread.
"""

from __future__ import annotations

from typing import Literal

import faiss
import numpy as np

from lookalike.index.scoring import IntArray
from lookalike.pipeline.types import FloatArray

Kind = Literal["flat", "hnsw", "pqrefine"]

APPROX_FROM = 200_000  # faces; below it exact flat search
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 512  # efSearch up to HNSW_EF_STEP faces, and one more HNSW_EF_SEARCH per HNSW_EF_STEP faces
HNSW_EF_STEP = 250_000
HNSW_EF_MAX = 2048
HNSW_NEIGHBOURS = 256  # nearest faces that nominate members for exact re-scoring (index.gallery), per 1024 ef
BLAS_FROM_QUERIES = 4  # flat search of this many queries at once goes through BLAS
PQ_PCA_DIM = 192  # PCA to this many dimensions (at most the embedding's), then 4-bit PQ of 2 dimensions per code
PQ_TRAIN_MAX = 100_000  # faces sampled (fixed seed) to train the PCA and the PQ codebooks
PQ_SEED = 1234  # the training sample's and faiss k-means' seed: a rebuild gives the same bytes
PQ_MIN_FACES = 1_000  # fewer faces than this never get a PQ index (16 centroids per sub-quantizer need data)
PQ_CANDIDATES = 2048  # PQ-nearest faces re-ranked exactly per search (k x k_factor, at least k)
PQ_NEIGHBOURS = 256  # nearest faces that nominate members for exact re-scoring (index.gallery)
APPROX_KIND: Kind = "pqrefine"  # the approximate index built from APPROX_FROM on; "hnsw" versions still load


def choose(n_faces: int, *, approx_from: int = APPROX_FROM, approx: Kind = APPROX_KIND) -> Kind:
    """The index kind for a gallery of `n_faces` faces: flat below `approx_from`, `approx` from it on (a PQ index
    never below PQ_MIN_FACES)."""
    if n_faces < approx_from or (approx == "pqrefine" and n_faces < PQ_MIN_FACES):
        return "flat"
    return approx


def ef_search(n_faces: int) -> int:
    """efSearch for an HNSW graph of `n_faces` faces: 512 up to 250k, 1024 up to 500k, 1536 up to 750k, then 2048."""
    return min(HNSW_EF_MAX, HNSW_EF_SEARCH * max(1, -(-n_faces // HNSW_EF_STEP)))


def neighbours(n_faces: int, kind: Kind = "hnsw") -> int:
    """How many nearest faces nominate members on an approximate index of `n_faces` faces: PQ_NEIGHBOURS on the
    PQ index; on an HNSW graph 256, 512 from efSearch 2048."""
    if kind == "pqrefine":
        return PQ_NEIGHBOURS
    return HNSW_NEIGHBOURS * max(1, ef_search(n_faces) // 1024)


def kind_of(index: faiss.Index) -> Kind:
    if isinstance(index, faiss.IndexHNSW):
        return "hnsw"
    if isinstance(index, faiss.IndexFlat):
        return "flat"
    if isinstance(index, faiss.IndexRefineFlat):
        return "pqrefine"
    raise TypeError(f"unsupported gallery index {type(index).__name__}")


def pq_factory(d: int) -> str:
    """The faiss factory string of the compressed base: PCA to min(PQ_PCA_DIM, d) (even) dimensions, then one
    4-bit sub-quantizer per 2 of them, scanned with fast scan ("PCA192,PQ96x4fs" for 512-d embeddings)."""
    dims = min(PQ_PCA_DIM, d) // 2 * 2
    return f"PCA{dims},PQ{dims // 2}x4fs"


def train_sample(n_faces: int) -> IntArray:
    """The rows the PQ index is trained on: at most PQ_TRAIN_MAX, drawn with PQ_SEED, in order."""
    chosen = np.random.default_rng(PQ_SEED).choice(n_faces, min(n_faces, PQ_TRAIN_MAX), replace=False)
    out: IntArray = np.sort(chosen).astype(np.int64)
    return out


def _build_pqrefine(x: FloatArray) -> faiss.Index:
    """PCA + 4-bit PQ fast scan over every face, trained on at most PQ_TRAIN_MAX faces drawn with PQ_SEED, and the
    float vectors kept for the exact re-rank (IndexRefineFlat). Built on one OpenMP thread (this thread's setting,
    restored after): on two, the PCA's eigenvectors come out differently (threaded BLAS/LAPACK: signs and rounding,
    measured from 20k x 512 on), and so do the codebooks, which would change a rebuilt version's checksum."""
    d = int(x.shape[1])
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        base = faiss.index_factory(d, pq_factory(d), faiss.METRIC_INNER_PRODUCT)
        faiss.downcast_index(base.index).pq.cp.seed = PQ_SEED  # type: ignore[attr-defined]  # the default, explicit
        base.train(x[train_sample(len(x))])
        index = faiss.IndexRefineFlat(base)
        index.add(x)
    finally:
        faiss.omp_set_num_threads(threads)
    return index


def build(embeddings: FloatArray, *, approx_from: int = APPROX_FROM, approx: Kind = APPROX_KIND) -> faiss.Index:
    """The index for these unit embeddings (rows), chosen by their number (choose)."""
    d = int(embeddings.shape[1])
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    kind = choose(len(x), approx_from=approx_from, approx=approx)
    if kind == "flat":
        flat = faiss.IndexFlatIP(d)
        if len(x):
            flat.add(x)
        return flat
    if kind == "pqrefine":
        return _build_pqrefine(x)
    index = faiss.IndexHNSWFlat(d, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.hnsw.efSearch = ef_search(len(x))  # stored with the index; searches pass their own (below)
    index.add(x)  # the same graph on any number of threads (see the module docstring)
    return index


def search(
    index: faiss.Index, queries: FloatArray, k: int, *, candidates: int | None = None
) -> tuple[FloatArray, IntArray]:
    """(similarities, positions) of the k nearest faces of each query, best first; position -1 where fewer. On the
    PQ index, `candidates` (default PQ_CANDIDATES, at least k) PQ-nearest faces are re-ranked exactly."""
    x = np.ascontiguousarray(queries, dtype=np.float32)
    if kind_of(index) == "hnsw":
        ef = max(ef_search(index.ntotal), k)
        params = faiss.SearchParametersHNSW(efSearch=ef)  # type: ignore[attr-defined]
        sims, pos = index.search(x, k, params=params)
        return sims, pos
    if kind_of(index) == "pqrefine":
        k_factor = (
            max(PQ_CANDIDATES if candidates is None else candidates, k) / k
        )  # PQ_CANDIDATES re-ranked exactly (float: faiss takes k * k_factor)
        refine = faiss.IndexRefineSearchParameters()
        refine.k_factor = k_factor
        sims, pos = index.search(x, k, params=refine)
        return sims, pos
    faiss.cvar.distance_compute_blas_threshold = BLAS_FROM_QUERIES * index.d
    sims, pos = index.search(x, k)
    return sims, pos


def exhaustive(index: faiss.Index) -> bool:
    """Whether searching for every face returns every face with its exact similarity."""
    return kind_of(index) == "flat"


def vectors(index: faiss.Index, positions: IntArray) -> FloatArray:
    """The stored vectors of these faces (exact for every kind: HNSWFlat and IndexRefineFlat keep the float
    vectors; the latter's own reconstruct_batch goes one face at a time, its flat part in one copy)."""
    if len(positions) == 0:
        return np.zeros((0, index.d), np.float32)
    if kind_of(index) == "pqrefine":
        index = faiss.downcast_index(index.refine_index)  # type: ignore[attr-defined]
    out: FloatArray = index.reconstruct_batch(np.ascontiguousarray(positions, dtype=np.int64))
    return out
