"""calibrate(): the two thresholds and the resemblance map, on synthetic clustered embeddings (real ones:
test_calibration_real.py)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import numpy.typing as npt
import pytest

from lookalike.index import loo as loo_module
from lookalike.index.calibration import (
    FALLBACK_THRESHOLD,
    Calibration,
    calibrate,
    resemblance_anchors,
)
from lookalike.index.loo import impostor_moments, leave_one_out
from lookalike.index.scoring import member_scores, member_top_k
from lookalike.index.tail import gumbel_fit, gumbel_quantile

DIM = 128
Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]


def clustered(
    n_members: int, photos: int | list[int], *, spread: float, seed: int, dim: int = DIM
) -> tuple[Floats, Ints]:
    """Unit vectors around one random centre per member; `spread` is the noise per dimension (relative)."""
    rng = np.random.default_rng(seed)
    counts = photos if isinstance(photos, list) else [photos] * n_members
    vecs: list[Floats] = []
    ids: list[int] = []
    for m, count in enumerate(counts):
        centre = rng.normal(size=dim)
        centre /= np.linalg.norm(centre)
        noise = rng.normal(scale=spread / np.sqrt(dim), size=(count, dim))
        member = centre + noise
        vecs.append((member / np.linalg.norm(member, axis=1, keepdims=True)).astype(np.float32))
        ids.extend([100 + 7 * m] * count)  # ids need not be 0..n-1
    return np.concatenate(vecs), np.asarray(ids, dtype=np.int64)


def best_scores(emb: Floats, members: Ints, k: int) -> tuple[list[float], list[float]]:
    """Per photo: the best other member's top-k mean, and its own member's top-k mean over its other photos."""
    impostor: list[float] = []
    genuine: list[float] = []
    sims = emb @ emb.T
    for i in range(len(emb)):
        per_member: dict[int, list[float]] = {}
        for j in range(len(emb)):
            if j != i:
                per_member.setdefault(int(members[j]), []).append(float(sims[i, j]))
        means = {m: float(np.mean(sorted(v, reverse=True)[:k])) for m, v in per_member.items()}
        own = int(members[i])
        if own in means:
            genuine.append(means.pop(own))
        if means:
            impostor.append(max(means.values()))
    return impostor, genuine


def cal(emb: Floats, members: Ints, *, target_fmr: float = 0.001, quantile: float = 0.4) -> Calibration:
    return calibrate(emb, members, k=3, target_fmr=target_fmr, lookalike_quantile=quantile).calibration


@pytest.fixture(scope="module")
def gallery() -> tuple[Floats, Ints]:
    return clustered(12, 6, spread=1.0, seed=1)


@pytest.fixture(scope="module")
def calibration(gallery: tuple[Floats, Ints]) -> Calibration:
    emb, members = gallery
    return cal(emb, members)


def test_threshold_separates_what_it_saw(gallery: tuple[Floats, Ints], calibration: Calibration) -> None:
    emb, members = gallery
    impostor, genuine = best_scores(emb, members, k=3)
    assert calibration.n_impostor == len(impostor) == len(emb)
    assert calibration.n_genuine == len(genuine) == len(emb)
    assert calibration.n_suspects == 0
    assert calibration.threshold >= max(impostor)
    assert calibration.threshold < float(np.median(genuine))
    assert calibration.impostor["p50"] == pytest.approx(float(np.median(impostor)), abs=1e-3)
    assert calibration.genuine["p50"] == pytest.approx(float(np.median(genuine)), abs=1e-3)
    assert set(calibration.impostor) == {"p1", "p5", "p25", "p50", "p75", "p95", "p99"}


def test_threshold_is_the_fitted_tail_of_the_impostor_bulk(
    gallery: tuple[Floats, Ints], calibration: Calibration
) -> None:
    emb, members = gallery
    impostor = np.asarray(best_scores(emb, members, k=3)[0], np.float32)
    fitted = gumbel_quantile(*gumbel_fit(impostor), 0.999)
    assert calibration.threshold == pytest.approx(max(fitted, float(impostor.max())), abs=1e-4)
    assert calibration.tail["location"] == pytest.approx(gumbel_fit(impostor)[0], abs=1e-5)


def test_interval_brackets_the_threshold(calibration: Calibration) -> None:
    low, high = calibration.threshold_interval
    assert low <= calibration.threshold <= high
    assert high - low < 0.2
    low, high = calibration.lookalike_interval
    assert calibration.lookalike_threshold is not None
    assert low <= calibration.lookalike_threshold <= high


def test_new_photos_of_members_match_and_strangers_rarely(calibration: Calibration) -> None:
    """Fresh photos drawn around the same member centres are the same person; people from other centres (almost)
    never are. "Almost": a 1-in-1000 tail estimated from 72 impostor scores; the check allows a few percent."""
    emb, members = clustered(12, 9, spread=1.0, seed=1)  # same seed: same centres, 3 more photos each
    keep = np.concatenate([np.arange(m * 9, m * 9 + 6) for m in range(12)])
    fresh = np.concatenate([np.arange(m * 9 + 6, m * 9 + 9) for m in range(12)])
    strangers, _ = clustered(30, 2, spread=1.0, seed=99)
    g_emb, g_members = emb[keep], members[keep]

    def top(query: Floats) -> tuple[int, float]:
        ids, scores, _ = member_scores(g_emb @ query, g_members, k=3)
        return int(ids[0]), float(scores[0])

    for i in fresh:
        member, score = top(emb[i])
        assert member == members[i] and score >= calibration.threshold
    stranger_scores = np.array([top(s)[1] for s in strangers])
    assert np.mean(stranger_scores >= calibration.threshold) <= 0.05
    assert np.median(stranger_scores) < calibration.threshold - 0.1


def test_lookalike_threshold_is_the_quantile_of_the_members_against_each_other(
    gallery: tuple[Floats, Ints],
) -> None:
    """No crowd: the lookalike threshold is the asked quantile of the members' best other-member scores on the
    gallery's pooled scale, below the same-person threshold."""
    emb, members = gallery
    impostor = np.asarray(best_scores(emb, members, k=3)[0])
    for quantile in (0.2, 0.5, 0.8):
        c = cal(emb, members, quantile=quantile)
        assert c.lookalike_quantile == quantile
        assert c.lookalike_threshold is not None
        assert c.lookalike_threshold < c.threshold
        # Same-size members drawn alike: the pooled scale is close to the raw one.
        assert c.lookalike_threshold == pytest.approx(float(np.quantile(impostor, quantile)), abs=0.02)
    low, high = cal(emb, members, quantile=0.2), cal(emb, members, quantile=0.8)
    assert low.lookalike_cut < high.lookalike_cut


def test_verdicts(calibration: Calibration) -> None:
    t, look = calibration.threshold, calibration.lookalike_cut
    assert calibration.verdict(t, -1.0) == "same_person"
    assert calibration.verdict(t - 0.01, look) == "lookalike"
    assert calibration.verdict(t - 0.01, look - 0.01) == "no_match"


def test_resemblance_is_monotone_and_bounded(calibration: Calibration) -> None:
    """A map of the lookalike score: 50 % at the lookalike threshold, 25 % at the gallery's 5th percentile."""
    look = calibration.lookalike_cut
    grid = np.linspace(-1.0, 1.0, 401)
    values = [calibration.resemblance(float(x)) for x in grid]
    assert all(0.0 <= v <= 100.0 for v in values)
    assert all(b >= a for a, b in itertools.pairwise(values))
    assert calibration.resemblance(look) == 50.0
    assert calibration.resemblance(look + 0.02) > 50.0 > calibration.resemblance(look - 0.02)
    assert calibration.resemblance(-1.0) == 0.0
    assert calibration.resemblance(calibration.lookalike["p5"] - 0.31) == 0.0
    assert calibration.resemblance(1.0) == 100.0
    assert calibration.resemblance(calibration.lookalike["p5"]) == pytest.approx(25.0, abs=0.5)


@pytest.mark.parametrize(
    ("threshold", "low", "genuine_median"),
    [(0.4, 0.2, 0.6), (0.4, 0.45, 0.3), (0.3, -0.2, 0.99), (0.05, 0.0, 0.02), (0.9, 0.95, 0.97)],
)
def test_anchors_stay_increasing_on_odd_galleries(threshold: float, low: float, genuine_median: float) -> None:
    anchors = resemblance_anchors(threshold, low, genuine_median)
    xs = [a[0] for a in anchors]
    ys = [a[1] for a in anchors]
    assert all(b >= a for a, b in itertools.pairwise(xs))
    assert all(b >= a for a, b in itertools.pairwise(ys))
    assert (threshold, 50.0) in anchors
    assert anchors[-1] == (1.0, 100.0)


def test_dict_roundtrip_through_json(calibration: Calibration) -> None:
    data = calibration.to_dict()
    again = Calibration.from_dict(json.loads(json.dumps(data)))  # as the index manifest stores it
    assert again == calibration
    assert again.resemblance(0.03) == calibration.resemblance(0.03)
    assert Calibration.from_dict(data) == calibration
    np.testing.assert_array_equal(again.norm().mean, calibration.norm().mean)


def test_a_version_from_before_the_three_verdicts_answers_as_it_did() -> None:
    """Its stored calibration has one threshold and anchors on the similarity: no member scale, no crowd, and the
    lookalike cut is that threshold, so the verdict is same_person above it and no_match below, as before."""
    old = Calibration.from_dict(
        {
            "threshold": 0.36,
            "target_fmr": 0.001,
            "impostor": {"p50": 0.2},
            "genuine": {"p50": 0.6},
            "n_impostor": 25,
            "n_genuine": 25,
            "anchors": [[-1.0, 0.0], [0.0, 0.0], [0.2, 25.0], [0.36, 50.0], [0.6, 90.0], [1.0, 100.0]],
        }
    )
    assert old.lookalike_cut == 0.36
    assert old.verdict(0.37, 0.37) == "same_person"
    assert old.verdict(0.35, 0.35) == "no_match"
    assert old.norm().apply(np.array([1, 2]), np.array([0.5, 0.3], np.float32)).tolist() == pytest.approx([0.5, 0.3])
    assert old.resemblance(0.36) == 50.0


def test_one_member_falls_back() -> None:
    emb, members = clustered(1, 5, spread=1.0, seed=4)
    c = cal(emb, members)
    assert c.threshold == FALLBACK_THRESHOLD
    assert c.n_impostor == 0 and c.impostor == {}
    assert c.n_genuine == 5
    assert c.lookalike_cut == FALLBACK_THRESHOLD
    assert c.resemblance(FALLBACK_THRESHOLD) == 50.0


def test_no_photos_falls_back() -> None:
    c = cal(np.zeros((0, DIM), np.float32), np.zeros(0, np.int64))
    assert c.threshold == FALLBACK_THRESHOLD
    assert c.n_impostor == c.n_genuine == 0
    values = [c.resemblance(x) for x in np.linspace(-1, 1, 101)]
    assert all(b >= a for a, b in itertools.pairwise(values))


def test_single_photo_members_give_impostor_scores_only() -> None:
    emb, members = clustered(4, 1, spread=1.0, seed=5)
    c = cal(emb, members)
    assert c.n_genuine == 0 and c.genuine == {}
    assert c.n_impostor == 4
    impostor, _ = best_scores(emb, members, k=3)
    assert c.threshold >= max(impostor)


def test_small_gallery_extrapolates_the_impostor_tail() -> None:
    """3 members x 3 photos = 9 impostor scores: too few to see a 1-in-1000 tail, so the fitted law decides, and
    it is never below the highest score seen."""
    emb, members = clustered(3, 3, spread=1.0, seed=6)
    imp = np.asarray(best_scores(emb, members, k=3)[0], np.float32)
    c = cal(emb, members)
    fitted = gumbel_quantile(*gumbel_fit(imp), 0.999)
    assert fitted > imp.max()
    assert c.threshold == pytest.approx(fitted, abs=1e-3)


def test_large_gallery_keeps_its_false_match_rate() -> None:
    """Enough impostor scores to see the tail: at most target_fmr of them reach the threshold."""
    emb, members = clustered(60, 10, spread=1.2, seed=8)
    target = 0.02
    c = cal(emb, members, target_fmr=target)
    imp = np.asarray(best_scores(emb, members, k=3)[0])
    assert c.n_impostor == len(imp) == 600
    assert np.mean(imp >= c.threshold) <= target
    assert c.threshold >= float(np.quantile(imp, 1 - target, method="higher"))


def test_member_order_and_ids_do_not_matter(gallery: tuple[Floats, Ints], calibration: Calibration) -> None:
    emb, members = gallery
    order = np.random.default_rng(0).permutation(len(emb))
    relabelled = (members[order] * 13 + 5).astype(np.int64)
    again = cal(emb[order], relabelled)
    assert again.threshold == pytest.approx(calibration.threshold, abs=1e-4)
    assert again.lookalike_cut == pytest.approx(calibration.lookalike_cut, abs=1e-4)
    assert again.n_impostor == calibration.n_impostor and again.n_genuine == calibration.n_genuine


@pytest.mark.parametrize("photos", [[1, 2, 3, 5, 8, 1, 4], [7] * 9])
def test_leave_one_out_matches_the_per_face_reference(photos: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    """The block-wise scores equal a face-by-face loop's, single-photo members included, whether all rows are
    scored at once or a few at a time (the memory bound)."""
    emb, members = clustered(len(photos), photos, spread=1.0, seed=11)
    impostor, genuine = best_scores(emb, members, k=3)
    whole = leave_one_out(emb, members, k=3)
    monkeypatch.setattr(loo_module, "_CELLS", 3 * len(emb))  # 3 rows per block
    chunked = leave_one_out(emb, members, k=3)
    for got in (whole, chunked):
        np.testing.assert_allclose(got.genuine, genuine, atol=1e-6)
        np.testing.assert_allclose(got.impostor, impostor, atol=1e-6)


def test_impostor_moments_are_each_members_column(monkeypatch: pytest.MonkeyPatch) -> None:
    emb, members = clustered(5, [2, 3, 4, 1, 6], spread=1.0, seed=13)
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    table = member_top_k(sims, members, k=3).astype(np.float64)
    ids = np.unique(members)
    monkeypatch.setattr(loo_module, "_CELLS", 2 * len(emb))
    moments = impostor_moments(emb, members, k=3)
    pooled = []
    for j, m in enumerate(ids):
        column = table[members != m, j]
        pooled.extend(column)
        assert moments.mean[j] == pytest.approx(column.mean(), abs=1e-5)
        assert moments.std[j] == pytest.approx(column.std(), abs=1e-5)
    assert moments.pooled_mean == pytest.approx(float(np.mean(pooled)), abs=1e-5)
    assert moments.pooled_std == pytest.approx(float(np.std(pooled)), abs=1e-5)


def test_member_top_k_is_member_scores_row_by_row() -> None:
    """The same numbers as member_scores gives the service's queries, not merely close ones."""
    emb, members = clustered(6, [1, 2, 4, 6, 3, 9], spread=1.0, seed=12)
    sims = emb[:8] @ emb.T
    table = member_top_k(sims, members, k=3)
    ids = np.unique(members)
    for row, scores in zip(sims, table, strict=True):
        m_ids, m_scores, _ = member_scores(row, members, k=3)
        assert dict(zip(m_ids.tolist(), m_scores.tolist(), strict=True)) == dict(
            zip(ids.tolist(), scores.tolist(), strict=True)
        )


def test_member_top_k_sorts_few_rows_and_loops_over_many_to_the_same_numbers() -> None:
    """A few rows take one sort, many rows a loop per member: identical sums, faces left out (-inf) included."""
    emb, members = clustered(40, [1 + i % 7 for i in range(40)], spread=1.0, seed=14)
    sims = emb @ emb.T
    sims[np.random.default_rng(3).random(sims.shape) < 0.1] = -np.inf
    sims[0, members == members[5]] = -np.inf  # a member with no face left in a row
    looped = member_top_k(sims, members, k=3)
    assert sims.size >= 100 * len(np.unique(members))  # the loop
    for row, expected in zip(sims, looped, strict=True):
        assert np.array_equal(member_top_k(row[None], members, k=3)[0], expected)  # the sort
