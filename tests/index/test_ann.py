"""The index kind by gallery size (index.ann), rank() on the approximate indices (PQ fast scan + exact re-rank, the
service's from APPROX_FROM on; HNSW, which older versions hold) and beyond the exhaustive limit (nominated members
re-scored exactly), member_target, deterministic builds and the store round-trip of every kind."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import numpy.typing as npt
import pytest

from lookalike.index import ann, store
from lookalike.index import gallery as gallery_module
from lookalike.index.calibration import Calibration, calibrate
from lookalike.index.gallery import GalleryIndex, MemberInfo, MemberScore
from lookalike.index.scoring import member_scores

DIM = 64
MEMBERS = 240
APPROX_FROM = 1_000  # a small threshold, so that a gallery of a few thousand faces gets the approximate index
Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]


def unit(x: npt.NDArray[np.floating]) -> Floats:
    return np.asarray(x / np.linalg.norm(x, axis=-1, keepdims=True), dtype=np.float32)


def clustered(seed: int = 0) -> tuple[Floats, Ints, Ints, Floats]:
    """Members with 1 to 20 photos (uneven, as in real galleries) around their centres: (emb, member ids, photo
    ids, centres). Centres share a common component, so strangers have many similar-ish members (as faces do)."""
    rng = np.random.default_rng(seed)
    common = unit(rng.normal(size=DIM))
    centres = unit(0.5 * common + unit(rng.normal(size=(MEMBERS, DIM))))
    counts = rng.integers(1, 21, MEMBERS)
    member_ids = np.repeat(np.arange(1, MEMBERS + 1) * 10, counts).astype(np.int64)
    emb = unit(np.repeat(centres, counts, axis=0) + rng.normal(scale=1.0 / np.sqrt(DIM), size=(counts.sum(), DIM)))
    photo_ids = (100_000 + rng.permutation(len(emb))).astype(np.int64)
    return emb, member_ids, photo_ids, centres


def calibration_of(emb: Floats, member_ids: Ints) -> Calibration:
    return calibrate(emb[:400], member_ids[:400], k=3, target_fmr=0.01, lookalike_quantile=0.5).calibration


def build(
    emb: Floats, member_ids: Ints, photo_ids: Ints, *, approx_from: int = APPROX_FROM, approx: ann.Kind = "hnsw"
) -> GalleryIndex:
    members = {int(m): MemberInfo(id=int(m), slug=f"m{m}", name=f"Member {m}", group="grp") for m in set(member_ids)}
    return GalleryIndex.build(
        version_id=3,
        group="grp",
        model_pack="buffalo_s",
        embeddings=emb,
        member_ids=member_ids,
        photo_ids=photo_ids,
        members=members,
        calibration=calibration_of(emb, member_ids),
        member_top_k=3,
        approx_from=approx_from,
        approx=approx,
    )


def exact(emb: Floats, member_ids: Ints, photo_ids: Ints, query: Floats, top: int) -> list[tuple[int, float, int]]:
    """(member, mean of their best 3 similarities, best photo id), best score first (the similarity on the pooled
    scale of the calibration every test gallery here shares), over every photo, directly."""
    norm = NORM
    sims = emb @ query
    rows = []
    for m in np.unique(member_ids):
        idx = np.flatnonzero(member_ids == m)
        ranked = idx[np.argsort(-sims[idx], kind="stable")]
        similarity = float(sims[ranked[:3]].mean())
        score = float(norm.apply(np.array([m], np.int64), np.array([similarity], np.float32))[0])
        rows.append((int(m), similarity, int(photo_ids[ranked[0]]), score))
    return [(m, sim, photo) for m, sim, photo, _ in sorted(rows, key=lambda r: -r[3])[:top]]


def summary(row: list[MemberScore]) -> list[tuple[int, float, int]]:
    return [(s.member.id, s.similarity, s.closest_photo_id) for s in row]


# The member scale every gallery built from clustered() has (members of its first 400 faces; the rest keep raw).
NORM = calibration_of(*clustered()[:2]).norm()


@pytest.fixture(scope="module")
def data() -> tuple[Floats, Ints, Ints, Floats]:
    return clustered()


@pytest.fixture(scope="module")
def approx(data: tuple[Floats, Ints, Ints, Floats]) -> GalleryIndex:
    emb, member_ids, photo_ids, _ = data
    return build(emb, member_ids, photo_ids)


@pytest.fixture(scope="module")
def pq(data: tuple[Floats, Ints, Ints, Floats]) -> GalleryIndex:
    emb, member_ids, photo_ids, _ = data
    return build(emb, member_ids, photo_ids, approx="pqrefine")


@pytest.fixture(scope="module")
def queries(data: tuple[Floats, Ints, Ints, Floats]) -> Floats:
    """Fresh photos of members, and strangers (the lookalike case: near nobody, many members almost as near)."""
    _, _, _, centres = data
    rng = np.random.default_rng(7)
    own = unit(centres[::8] + rng.normal(scale=1.0 / np.sqrt(DIM), size=centres[::8].shape))
    strangers = unit(0.5 * unit(centres.mean(0)) + unit(rng.normal(size=(30, DIM))))
    return np.concatenate([own, strangers])


def assert_same_ranking(got: list[MemberScore], expected: list[tuple[int, float, int]]) -> None:
    assert [s.member.id for s in got] == [e[0] for e in expected]
    for s, (_, sim, photo) in zip(got, expected, strict=True):
        assert s.similarity == pytest.approx(sim, abs=1e-4)
        assert s.closest_photo_id == photo


# --------------------------------------------------------------------------- the choice


def test_choice_by_size() -> None:
    assert ann.choose(0) == "flat"
    assert ann.choose(ann.APPROX_FROM - 1) == "flat"
    assert ann.choose(ann.APPROX_FROM) == "pqrefine"
    assert ann.choose(10 * ann.APPROX_FROM) == "pqrefine"
    assert ann.choose(999, approx_from=1000) == "flat" and ann.choose(1000, approx_from=1000) == "pqrefine"
    assert ann.choose(1000, approx_from=1000, approx="hnsw") == "hnsw"
    # A PQ index needs data to train 16 centroids per sub-quantizer: tiny galleries stay flat whatever the threshold.
    assert ann.choose(ann.PQ_MIN_FACES - 1, approx_from=0) == "flat"
    assert ann.choose(ann.PQ_MIN_FACES - 1, approx_from=0, approx="hnsw") == "hnsw"


def test_search_effort_grows_with_the_gallery() -> None:
    assert ann.ef_search(1_000) == ann.ef_search(ann.HNSW_EF_STEP) == ann.HNSW_EF_SEARCH
    assert ann.ef_search(ann.HNSW_EF_STEP + 1) == 2 * ann.HNSW_EF_SEARCH
    assert ann.ef_search(10**9) == ann.HNSW_EF_MAX
    assert ann.neighbours(1_000) == ann.HNSW_NEIGHBOURS
    assert ann.neighbours(10**9) == ann.HNSW_NEIGHBOURS * ann.HNSW_EF_MAX // 1024


def test_build_picks_the_index_by_size(data: tuple[Floats, Ints, Ints, Floats], approx: GalleryIndex) -> None:
    emb, member_ids, photo_ids, _ = data
    assert isinstance(approx.index, faiss.IndexHNSWFlat)
    assert approx.index.ntotal == len(emb) > APPROX_FROM
    assert approx.index.metric_type == faiss.METRIC_INNER_PRODUCT
    assert approx.index.hnsw.efSearch == ann.ef_search(len(emb)) == ann.HNSW_EF_SEARCH
    assert ann.kind_of(approx.index) == "hnsw" and not ann.exhaustive(approx.index)
    small = build(emb[:500], member_ids[:500], photo_ids[:500])
    assert isinstance(small.index, faiss.IndexFlatIP) and ann.kind_of(small.index) == "flat"
    default = build(emb, member_ids, photo_ids, approx_from=ann.APPROX_FROM, approx=ann.APPROX_KIND)
    assert isinstance(default.index, faiss.IndexFlatIP)  # the default threshold is far above this gallery
    pq = build(emb, member_ids, photo_ids, approx=ann.APPROX_KIND)
    assert isinstance(pq.index, faiss.IndexRefineFlat) and ann.kind_of(pq.index) == "pqrefine"
    assert not ann.exhaustive(pq.index) and pq.index.ntotal == len(emb)


@pytest.mark.parametrize("kind", ["hnsw", "pqrefine"])
def test_build_is_deterministic(
    data: tuple[Floats, Ints, Ints, Floats], approx: GalleryIndex, pq: GalleryIndex, queries: Floats, kind: ann.Kind
) -> None:
    """A version rebuilt from the database must be byte-identical to the published one (same checksum), on any
    number of threads: faiss 1.15 builds the same HNSW graph on one thread as on all; the PQ index's PCA, k-means
    and training sample are seeded."""
    emb, _, _, _ = data
    published = (approx if kind == "hnsw" else pq).index
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        one_thread = ann.build(emb, approx_from=APPROX_FROM, approx=kind)
    finally:
        faiss.omp_set_num_threads(threads)
    again = ann.build(emb, approx_from=APPROX_FROM, approx=kind)
    for index in (again, one_thread):
        assert np.array_equal(faiss.serialize_index(index), faiss.serialize_index(published))
        for got, expected in zip(ann.search(index, queries, 50), ann.search(published, queries, 50), strict=True):
            np.testing.assert_array_equal(got, expected)


# --------------------------------------------------------------------------- rank


def test_approximate_rank_matches_exact_search(
    data: tuple[Floats, Ints, Ints, Floats], approx: GalleryIndex, queries: Floats
) -> None:
    emb, member_ids, photo_ids, _ = data
    flat = build(emb, member_ids, photo_ids, approx_from=10**9)
    assert isinstance(flat.index, faiss.IndexFlatIP)
    got, reference = approx.rank(queries, top=5), flat.rank(queries, top=5)
    for row, ref, q in zip(got, reference, queries, strict=True):
        expected = exact(emb, member_ids, photo_ids, q, 5)
        assert_same_ranking(ref, expected)
        assert_same_ranking(row, expected)


def test_approximate_rank_searches_at_least_k_neighbours(
    approx: GalleryIndex, queries: Floats, monkeypatch: pytest.MonkeyPatch
) -> None:
    """efSearch below k would return fewer than k faces (-1 positions): the search raises it to k."""
    monkeypatch.setattr(ann, "HNSW_EF_SEARCH", 8)
    sims, pos = ann.search(approx.index, queries[:4], 300)
    assert (pos >= 0).all() and pos.shape == (4, 300)
    assert (np.diff(sims, axis=1) <= 1e-6).all()


def test_few_neighbours_still_rank_exactly(
    data: tuple[Floats, Ints, Ints, Floats], queries: Floats, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond the exhaustive limit, and with very few neighbours, the nominated members are re-scored over all
    their photos (and the search widened when needed): the ranking is the exhaustive one. Aggregating only the
    retrieved photos, as before, gets it wrong on these queries."""
    emb, member_ids, photo_ids, _ = data
    flat = build(emb, member_ids, photo_ids, approx_from=10**9)
    monkeypatch.setattr(gallery_module, "EXHAUSTIVE_LIMIT", 100)
    monkeypatch.setattr(gallery_module, "NEIGHBOURS", 12)
    naive_wrong = 0
    for q, row in zip(queries, flat.rank(queries, top=3), strict=True):
        expected = exact(emb, member_ids, photo_ids, q, 3)
        assert_same_ranking(row, expected)
        sims, pos = flat.index.search(q[None, :], 12)
        ids, _, _ = member_scores(sims[0], member_ids[pos[0]], k=3)
        naive_wrong += [int(m) for m in ids[:3]] != [e[0] for e in expected]
    assert naive_wrong >= 10  # the test gallery does exercise the over-scoring that re-scoring prevents


def test_approximate_rank_with_few_neighbours(
    data: tuple[Floats, Ints, Ints, Floats], approx: GalleryIndex, queries: Floats, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the 16 nearest faces nominate members; exact re-scoring and widening do the rest."""
    emb, member_ids, photo_ids, _ = data
    monkeypatch.setattr(ann, "HNSW_NEIGHBOURS", 16)
    for q, row in zip(queries, approx.rank(queries, top=3), strict=True):
        assert_same_ranking(row, exact(emb, member_ids, photo_ids, q, 3))


def test_top_beyond_the_members_and_a_photo_itself(
    data: tuple[Floats, Ints, Ints, Floats], approx: GalleryIndex
) -> None:
    emb, member_ids, photo_ids, _ = data
    for i in (0, 17, len(emb) - 1):
        best = approx.rank(emb[i : i + 1], top=1)[0][0]
        assert best.member.id == member_ids[i] and best.closest_photo_id == photo_ids[i]
    assert approx.rank(np.zeros((0, DIM), np.float32), top=3) == []


def test_member_target_on_the_approximate_index(
    data: tuple[Floats, Ints, Ints, Floats], approx: GalleryIndex, queries: Floats
) -> None:
    emb, member_ids, _, _ = data
    for q in queries[::5]:
        best = approx.rank(q[None, :], top=1)[0][0]
        target = approx.member_target(q, best.member.id)
        mine = emb[member_ids == best.member.id]
        expected = mine[np.argsort(-(mine @ q), kind="stable")[:3]].mean(0)
        np.testing.assert_allclose(target, expected, atol=1e-6)
        assert float(target @ q) == pytest.approx(best.similarity, abs=1e-4)


# --------------------------------------------------------------------------- store


def test_store_round_trips_the_approximate_index(tmp_path: Path, approx: GalleryIndex, queries: Floats) -> None:
    directory, _ = store.save(tmp_path, approx)
    assert json.loads((directory / store.MANIFEST).read_text())["index_kind"] == "hnsw"
    loaded = store.load(directory)
    assert isinstance(loaded.index, faiss.IndexHNSWFlat)
    assert loaded.index.ntotal == approx.index.ntotal
    assert loaded.index.hnsw.efSearch == approx.index.hnsw.efSearch
    assert loaded.index.hnsw.efConstruction == ann.HNSW_EF_CONSTRUCTION
    assert [summary(r) for r in loaded.rank(queries, top=4)] == [summary(r) for r in approx.rank(queries, top=4)]
    q = queries[0]
    member = approx.rank(q[None, :], top=1)[0][0].member.id
    np.testing.assert_array_equal(loaded.member_target(q, member), approx.member_target(q, member))
    # Saving the loaded version again gives the same files (a rebuilt or re-saved version keeps its checksum).
    assert store.save(tmp_path / "again", loaded)[1] == store.save(tmp_path / "again2", approx)[1]


def test_store_round_trips_the_flat_index(tmp_path: Path, data: tuple[Floats, Ints, Ints, Floats]) -> None:
    emb, member_ids, photo_ids, _ = data
    flat = build(emb[:600], member_ids[:600], photo_ids[:600])
    directory, _ = store.save(tmp_path, flat)
    assert json.loads((directory / store.MANIFEST).read_text())["index_kind"] == "flat"
    assert isinstance(store.load(directory).index, faiss.IndexFlatIP)


@pytest.mark.parametrize(("kind", "claimed"), [("hnsw", "flat"), ("pqrefine", "hnsw"), ("pqrefine", "flat")])
def test_store_refuses_an_index_of_another_kind(
    tmp_path: Path, approx: GalleryIndex, pq: GalleryIndex, kind: str, claimed: str
) -> None:
    directory, _ = store.save(tmp_path, approx if kind == "hnsw" else pq)
    path = directory / store.MANIFEST
    manifest = json.loads(path.read_text())
    assert manifest["index_kind"] == kind
    manifest["index_kind"] = claimed
    path.write_text(json.dumps(manifest))
    with pytest.raises(store.CorruptIndex, match=kind):
        store.load(directory)


def test_versions_without_an_index_kind_load_as_flat(tmp_path: Path, data: tuple[Floats, Ints, Ints, Floats]) -> None:
    emb, member_ids, photo_ids, _ = data
    flat = build(emb[:300], member_ids[:300], photo_ids[:300])
    directory, _ = store.save(tmp_path, flat)
    path = directory / store.MANIFEST
    manifest = json.loads(path.read_text())
    del manifest["index_kind"]
    path.write_text(json.dumps(manifest))
    assert isinstance(store.load(directory).index, faiss.IndexFlatIP)


# --------------------------------------------------------------------------- PQ fast scan + exact re-rank


@pytest.fixture(scope="module")
def large() -> tuple[Floats, Ints, Ints, Floats, Floats]:
    """A gallery of 2,400 members (about 25k faces, d = 64) and queries as above: own photos and strangers."""
    rng = np.random.default_rng(3)
    common = unit(rng.normal(size=DIM))
    n_members = 2_400
    centres = unit(0.5 * common + unit(rng.normal(size=(n_members, DIM))))
    counts = rng.integers(1, 21, n_members)
    member_ids = np.repeat(np.arange(1, n_members + 1) * 10, counts).astype(np.int64)
    emb = unit(np.repeat(centres, counts, axis=0) + rng.normal(scale=1.0 / np.sqrt(DIM), size=(counts.sum(), DIM)))
    photo_ids = (100_000 + rng.permutation(len(emb))).astype(np.int64)
    own = unit(centres[::40] + rng.normal(scale=1.0 / np.sqrt(DIM), size=centres[::40].shape))
    strangers = unit(0.5 * common + unit(rng.normal(size=(60, DIM))))
    return emb, member_ids, photo_ids, centres, np.concatenate([own, strangers])


def test_pq_index_layout(pq: GalleryIndex) -> None:
    """PCA to the embedding's dimensions (at most ann.PQ_PCA_DIM), one 4-bit code per 2 of them, fast scan; the
    float vectors kept for the exact re-rank."""
    assert ann.pq_factory(512) == "PCA192,PQ96x4fs" and ann.pq_factory(DIM) == "PCA64,PQ32x4fs"
    index = pq.index
    assert isinstance(index, faiss.IndexRefineFlat) and index.metric_type == faiss.METRIC_INNER_PRODUCT
    base = faiss.downcast_index(index.base_index)
    assert isinstance(base, faiss.IndexPreTransform)
    assert isinstance(faiss.downcast_VectorTransform(base.chain.at(0)), faiss.PCAMatrix)
    scan = faiss.downcast_index(base.index)
    assert isinstance(scan, faiss.IndexPQFastScan) and (scan.pq.M, scan.pq.nbits) == (DIM // 2, 4)
    assert faiss.downcast_index(index.refine_index).ntotal == index.ntotal


def test_pq_training_sample_is_bounded_and_fixed() -> None:
    """The build trains on at most PQ_TRAIN_MAX faces (a 1M gallery trains in seconds), always the same ones."""
    big = ann.train_sample(1_000_000)
    assert len(big) == ann.PQ_TRAIN_MAX and len(np.unique(big)) == len(big)
    assert (np.diff(big) > 0).all() and big[0] >= 0 and big[-1] < 1_000_000
    np.testing.assert_array_equal(big, ann.train_sample(1_000_000))
    np.testing.assert_array_equal(ann.train_sample(5_000), np.arange(5_000))


def test_pq_build_is_deterministic_in_512_dimensions() -> None:
    """At the embeddings' own size the PCA is where threads showed: trained on two OpenMP threads, its eigenvectors
    differed from one thread's (20k x 512); the build runs on one thread whatever the caller set."""
    rng = np.random.default_rng(5)
    x = unit(np.repeat(rng.normal(size=(2_000, 512)), 10, axis=0) + rng.normal(size=(20_000, 512)))
    published = faiss.serialize_index(ann.build(x, approx_from=0))
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        again = faiss.serialize_index(ann.build(x, approx_from=0))
    finally:
        faiss.omp_set_num_threads(threads)
    assert np.array_equal(again, published)
    assert faiss.omp_get_max_threads() == threads  # the caller's setting is back


def test_pq_search_recall_against_flat(large: tuple[Floats, Ints, Ints, Floats, Floats]) -> None:
    """recall@10 against exact search with the service's candidate count (about 8% of this gallery re-ranked), and
    with far fewer candidates to show the PQ ordering itself is good; similarities are exact."""
    emb, _, _, _, queries = large
    index = ann.build(emb, approx_from=APPROX_FROM)
    assert ann.kind_of(index) == "pqrefine"
    truth = np.argsort(-(queries @ emb.T), axis=1, kind="stable")[:, :10]

    def recall(pos: Ints) -> float:
        return float(np.mean([len(set(p) & set(t)) / 10 for p, t in zip(pos.tolist(), truth.tolist(), strict=True)]))

    sims, pos = ann.search(index, queries, 10)
    assert recall(pos) >= 0.95
    np.testing.assert_allclose(sims, np.take_along_axis(queries @ emb.T, pos, axis=1), atol=1e-5)
    assert recall(ann.search(index, queries, 10, candidates=200)[1]) >= 0.9
    # Without the re-rank budget (the 10 PQ-nearest as they come) recall drops: the re-rank does real work.
    assert recall(ann.search(index, queries, 10, candidates=10)[1]) < recall(pos)


def test_pq_rank_matches_flat(large: tuple[Floats, Ints, Ints, Floats, Floats]) -> None:
    """rank(top=3) on the PQ index returns flat's ranking (members, exact scores, closest photos) for nearly every
    query; a member is only missed when none of its photos is among the re-ranked candidates."""
    emb, member_ids, photo_ids, _, queries = large
    pq_gallery = build(emb, member_ids, photo_ids, approx="pqrefine")
    flat = build(emb, member_ids, photo_ids, approx_from=10**9)
    assert isinstance(pq_gallery.index, faiss.IndexRefineFlat) and isinstance(flat.index, faiss.IndexFlatIP)
    got, reference = pq_gallery.rank(queries, top=3), flat.rank(queries, top=3)
    same = [summary(g) == summary(r) for g, r in zip(got, reference, strict=True)]
    assert np.mean(same) >= 0.95, np.mean(same)
    for q, row in zip(queries, got, strict=True):  # whatever is returned is scored exactly
        for s in row:
            mine = emb[member_ids == s.member.id]
            assert s.similarity == pytest.approx(float(np.sort(mine @ q)[::-1][:3].mean()), abs=1e-4)


def test_pq_rank_is_exact_on_the_small_gallery(
    data: tuple[Floats, Ints, Ints, Floats], pq: GalleryIndex, queries: Floats
) -> None:
    emb, member_ids, photo_ids, _ = data
    for q, row in zip(queries, pq.rank(queries, top=5), strict=True):
        assert_same_ranking(row, exact(emb, member_ids, photo_ids, q, 5))
    for i in (0, 17, len(emb) - 1):
        best = pq.rank(emb[i : i + 1], top=1)[0][0]
        assert best.member.id == member_ids[i] and best.closest_photo_id == photo_ids[i]


def test_member_target_on_the_pq_index(
    data: tuple[Floats, Ints, Ints, Floats], pq: GalleryIndex, queries: Floats
) -> None:
    emb, member_ids, _, _ = data
    np.testing.assert_array_equal(ann.vectors(pq.index, np.array([5, 0, 9])), emb[[5, 0, 9]])
    for q in queries[::5]:
        best = pq.rank(q[None, :], top=1)[0][0]
        target = pq.member_target(q, best.member.id)
        mine = emb[member_ids == best.member.id]
        np.testing.assert_allclose(target, mine[np.argsort(-(mine @ q), kind="stable")[:3]].mean(0), atol=1e-6)


def test_store_round_trips_the_pq_index(tmp_path: Path, pq: GalleryIndex, queries: Floats) -> None:
    directory, _ = store.save(tmp_path, pq)
    assert json.loads((directory / store.MANIFEST).read_text())["index_kind"] == "pqrefine"
    loaded = store.load(directory)
    assert isinstance(loaded.index, faiss.IndexRefineFlat) and ann.kind_of(loaded.index) == "pqrefine"
    assert isinstance(faiss.downcast_index(faiss.downcast_index(loaded.index.base_index).index), faiss.IndexPQFastScan)
    assert loaded.index.ntotal == pq.index.ntotal
    for got, expected in zip(ann.search(loaded.index, queries, 100), ann.search(pq.index, queries, 100), strict=True):
        np.testing.assert_array_equal(got, expected)
    assert [summary(r) for r in loaded.rank(queries, top=4)] == [summary(r) for r in pq.rank(queries, top=4)]
    q = queries[0]
    member = pq.rank(q[None, :], top=1)[0][0].member.id
    np.testing.assert_array_equal(loaded.member_target(q, member), pq.member_target(q, member))
    assert store.save(tmp_path / "again", loaded)[1] == store.save(tmp_path / "again2", pq)[1]
