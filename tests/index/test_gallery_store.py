"""GalleryIndex.build + rank on synthetic embeddings, and the on-disk version format (store.save / store.load)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from lookalike.index import gallery as gallery_module
from lookalike.index import store
from lookalike.index.calibration import calibrate
from lookalike.index.gallery import GalleryIndex, MemberInfo, MemberScore

DIM = 64
Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]


def unit(x: npt.NDArray[np.floating]) -> Floats:
    return np.asarray(x / np.linalg.norm(x, axis=-1, keepdims=True), dtype=np.float32)


def make_gallery(
    *, n_members: int = 6, photos: int = 5, seed: int = 0, version_id: int = 7, dim: int = DIM
) -> tuple[GalleryIndex, Floats, Floats]:
    """A gallery of clustered members (ids 10, 20, ...; photo ids 1000+); returns it, its embeddings and centres."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.normal(size=(n_members, dim)))
    emb = unit(
        np.repeat(centres, photos, axis=0) + rng.normal(scale=0.9 / np.sqrt(dim), size=(n_members * photos, dim))
    )
    member_ids = np.repeat(np.arange(1, n_members + 1) * 10, photos).astype(np.int64)
    photo_ids = (1000 + rng.permutation(n_members * photos)).astype(np.int64)
    members = {int(m): MemberInfo(id=int(m), slug=f"m{m}", name=f"Member {m}", group="grp") for m in set(member_ids)}
    cal = calibrate(emb, member_ids, k=3, target_fmr=0.001, lookalike_quantile=0.5).calibration
    g = GalleryIndex.build(
        version_id=version_id,
        group="grp",
        model_pack="buffalo_s",
        embeddings=emb,
        member_ids=member_ids,
        photo_ids=photo_ids,
        members=members,
        calibration=cal,
        member_top_k=3,
    )
    return g, emb, centres


def expected_ranking(g: GalleryIndex, emb: Floats, query: Floats) -> list[tuple[int, float, float, int]]:
    """(member id, top-3 mean, that on the pooled scale, photo id of the best photo), best score first, computed
    directly from the calibration's member statistics."""
    sims = emb @ query
    stats = g.calibration.member_norm
    pooled_mean, pooled_std = g.calibration.pooled
    rows = []
    for m in sorted(g.members):
        idx = np.flatnonzero(g.member_ids == m)
        ranked = idx[np.argsort(-sims[idx])]
        similarity = float(sims[ranked[:3]].mean())
        mean, std = stats[str(m)]
        score = pooled_mean + pooled_std * (similarity - mean) / std
        rows.append((m, similarity, score, int(g.photo_ids[ranked[0]])))
    return sorted(rows, key=lambda r: -r[2])


def summary(result: list[list[MemberScore]]) -> list[list[tuple[int, float, float, int]]]:
    return [[(s.member.id, s.similarity, s.resemblance, s.closest_photo_id) for s in row] for row in result]


@pytest.fixture(scope="module")
def built() -> tuple[GalleryIndex, Floats, Floats]:
    return make_gallery()


@pytest.fixture(scope="module")
def queries(built: tuple[GalleryIndex, Floats, Floats]) -> Floats:
    _, _, centres = built
    rng = np.random.default_rng(42)
    near = unit(centres + rng.normal(scale=0.7 / np.sqrt(DIM), size=centres.shape))
    strangers = unit(rng.normal(size=(3, DIM)))
    return np.concatenate([near, strangers])


# --------------------------------------------------------------------------- GalleryIndex


def test_build(built: tuple[GalleryIndex, Floats, Floats]) -> None:
    g, emb, _ = built
    assert g.index.ntotal == len(emb) == 30
    assert g.index.d == DIM
    assert g.threshold == g.calibration.threshold
    assert len(g.members) == 6


def test_rank_matches_a_direct_computation(built: tuple[GalleryIndex, Floats, Floats], queries: Floats) -> None:
    g, emb, _ = built
    result = g.rank(queries, top=6)
    assert len(result) == len(queries)
    for row, q in zip(result, queries, strict=True):
        expected = expected_ranking(g, emb, q)
        assert [s.member.id for s in row] == [e[0] for e in expected]
        for s, (_, sim, score, photo) in zip(row, expected, strict=True):
            assert s.similarity == pytest.approx(sim, abs=1e-4)
            assert s.score == pytest.approx(score, abs=1e-4)
            assert s.lookalike == s.score  # no crowd in this gallery
            assert s.closest_photo_id == photo
            assert s.resemblance == pytest.approx(g.calibration.resemblance(score), abs=0.1)
            assert s.member is g.members[s.member.id]


def test_rank_puts_the_own_member_first(built: tuple[GalleryIndex, Floats, Floats], queries: Floats) -> None:
    g, _, _ = built
    result = g.rank(queries[:6], top=3)
    for i, row in enumerate(result):
        assert len(row) == 3
        assert row[0].member.id == (i + 1) * 10
        assert row[0].similarity >= g.threshold
        assert [s.score for s in row] == sorted((s.score for s in row), reverse=True)
        assert [s.resemblance for s in row] == sorted((s.resemblance for s in row), reverse=True)
        assert len({s.member.id for s in row}) == 3  # one entry per member, never a member twice


def test_strangers_score_below_threshold(built: tuple[GalleryIndex, Floats, Floats], queries: Floats) -> None:
    g, _, _ = built
    for row in g.rank(queries[6:], top=1):
        # Random directions resemble these random members as much as the members resemble each other: never the
        # same person, and on either side of the lookalike threshold.
        assert row[0].similarity < g.threshold
        assert g.calibration.verdict(row[0].similarity, row[0].lookalike) != "same_person"


def test_closest_photo_is_the_photo_itself(built: tuple[GalleryIndex, Floats, Floats]) -> None:
    g, emb, _ = built
    for i in (0, 7, 29):
        best = g.rank(emb[i : i + 1], top=1)[0][0]
        assert best.member.id == g.member_ids[i]
        assert best.closest_photo_id == g.photo_ids[i]


def test_top_larger_than_the_gallery_and_empty_queries(built: tuple[GalleryIndex, Floats, Floats]) -> None:
    g, emb, _ = built
    assert len(g.rank(emb[:1], top=50)[0]) == 6
    assert g.rank(np.zeros((0, DIM), np.float32), top=3) == []


def test_empty_gallery_ranks_nobody() -> None:
    cal = calibrate(
        np.zeros((0, DIM), np.float32), np.zeros(0, np.int64), k=3, target_fmr=0.001, lookalike_quantile=0.5
    ).calibration
    g = GalleryIndex.build(
        version_id=1,
        group="grp",
        model_pack="buffalo_s",
        embeddings=np.zeros((0, DIM), np.float32),
        member_ids=np.zeros(0, np.int64),
        photo_ids=np.zeros(0, np.int64),
        members={},
        calibration=cal,
        member_top_k=3,
    )
    assert g.rank(unit(np.ones((2, DIM))), top=3) == [[], []]


def test_large_gallery_uses_nearest_neighbours_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past EXHAUSTIVE_LIMIT only the nearest photos are searched; the clear winner must not change."""
    g, _, centres = make_gallery(n_members=40, photos=10, seed=3)
    exhaustive = g.rank(centres, top=3)
    monkeypatch.setattr(gallery_module, "EXHAUSTIVE_LIMIT", 100)
    monkeypatch.setattr(gallery_module, "NEIGHBOURS", 50)
    limited = g.rank(centres, top=3)
    for full, part, m in zip(exhaustive, limited, range(1, 41), strict=True):
        assert full[0].member.id == part[0].member.id == m * 10
        assert full[0].similarity == part[0].similarity
        assert full[0].closest_photo_id == part[0].closest_photo_id


# --------------------------------------------------------------------------- store


def test_save_load_roundtrip(tmp_path: Path, built: tuple[GalleryIndex, Floats, Floats], queries: Floats) -> None:
    g, _, _ = built
    directory, digest = store.save(tmp_path, g)
    assert directory == store.version_dir(tmp_path, "grp", 7) == tmp_path / "grp" / "v000007"
    assert len(digest) == 64
    loaded = store.load(directory)
    assert loaded.version_id == g.version_id and loaded.group == g.group and loaded.model_pack == g.model_pack
    assert loaded.member_top_k == g.member_top_k
    assert loaded.members == g.members
    assert loaded.calibration == g.calibration
    np.testing.assert_array_equal(loaded.member_ids, g.member_ids)
    np.testing.assert_array_equal(loaded.photo_ids, g.photo_ids)
    assert loaded.member_ids.dtype == np.int64 and loaded.photo_ids.dtype == np.int64
    assert loaded.index.ntotal == g.index.ntotal
    assert summary(loaded.rank(queries, top=4)) == summary(g.rank(queries, top=4))


def test_files_and_no_leftovers(tmp_path: Path, built: tuple[GalleryIndex, Floats, Floats]) -> None:
    import hashlib

    g, _, _ = built
    directory, digest = store.save(tmp_path, g)
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [store.MANIFEST, store.INDEX_FILE, store.LABELS_FILE, store.CROWD_FILE]
    )
    assert not list(tmp_path.rglob("*.tmp"))
    manifest_bytes = (directory / store.MANIFEST).read_bytes()
    assert hashlib.sha256(manifest_bytes).hexdigest() == digest
    manifest = json.loads(manifest_bytes)
    for name, sha in manifest["files"].items():
        assert hashlib.sha256((directory / name).read_bytes()).hexdigest() == sha
    assert manifest["n_faces"] == 30 and manifest["group"] == "grp" and manifest["version_id"] == 7
    mtimes = {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}
    assert mtimes[store.MANIFEST] >= max(mtimes[store.INDEX_FILE], mtimes[store.LABELS_FILE], mtimes[store.CROWD_FILE])


def test_manifest_is_written_last(
    tmp_path: Path, built: tuple[GalleryIndex, Floats, Floats], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recorded at the moment each file becomes visible: when the manifest appears, its files are already there."""
    g, _, _ = built
    seen: list[tuple[str, list[str]]] = []
    real_write = store._write_atomic

    def recording_write(path: Path, data: bytes) -> str:
        digest = real_write(path, data)
        seen.append((path.name, sorted(p.name for p in path.parent.iterdir())))
        return digest

    monkeypatch.setattr(store, "_write_atomic", recording_write)
    store.save(tmp_path, g)
    names = [name for name, _ in seen]
    assert names[-1] == store.MANIFEST
    assert set(names) == {store.MANIFEST, store.INDEX_FILE, store.LABELS_FILE, store.CROWD_FILE}
    visible_with_manifest = seen[-1][1]
    assert store.INDEX_FILE in visible_with_manifest and store.LABELS_FILE in visible_with_manifest
    for _, visible in seen[:-1]:
        assert store.MANIFEST not in visible


def test_saving_again_replaces_the_version_cleanly(tmp_path: Path, built: tuple[GalleryIndex, Floats, Floats]) -> None:
    g, _, _ = built
    first, digest1 = store.save(tmp_path, g)
    second, digest2 = store.save(tmp_path, g)
    assert first == second and digest1 == digest2
    assert not list(tmp_path.rglob("*.tmp"))
    store.load(second)


@pytest.mark.parametrize("name", [store.INDEX_FILE, store.LABELS_FILE, store.CROWD_FILE])
@pytest.mark.parametrize("damage", ["flip", "truncate", "append"])
def test_corrupt_file_is_refused(
    tmp_path: Path, built: tuple[GalleryIndex, Floats, Floats], name: str, damage: str
) -> None:
    g, _, _ = built
    directory, _ = store.save(tmp_path, g)
    path = directory / name
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    elif damage == "truncate":
        del data[-10:]
    else:
        data += b"\x00"
    path.write_bytes(bytes(data))
    with pytest.raises(store.CorruptIndex):
        store.load(directory)


@pytest.mark.parametrize("damage", ["not json", "truncated", "missing key"])
def test_corrupt_manifest_is_refused(tmp_path: Path, built: tuple[GalleryIndex, Floats, Floats], damage: str) -> None:
    g, _, _ = built
    directory, _ = store.save(tmp_path, g)
    path = directory / store.MANIFEST
    text = path.read_text()
    if damage == "not json":
        path.write_text("\x00garbage")
    elif damage == "truncated":
        path.write_text(text[: len(text) // 2])
    else:
        manifest = json.loads(text)
        del manifest["calibration"]
        path.write_text(json.dumps(manifest))
    with pytest.raises(store.CorruptIndex):
        store.load(directory)


def test_missing_file_is_refused(tmp_path: Path, built: tuple[GalleryIndex, Floats, Floats]) -> None:
    g, _, _ = built
    directory, _ = store.save(tmp_path, g)
    (directory / store.LABELS_FILE).unlink()
    with pytest.raises(store.CorruptIndex):
        store.load(directory)
