"""member_scores: per-member mean of the best k photo similarities, best member first."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.index.scoring import MemberNorm, member_scores


def arrays(sims: list[float], members: list[int]) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(sims, dtype=np.float32), np.asarray(members, dtype=np.int64)


def brute_force(sims: np.ndarray, members: np.ndarray, k: int) -> dict[int, tuple[float, int]]:
    """member -> (mean of best k, position of best photo), written the obvious way."""
    out: dict[int, tuple[float, int]] = {}
    for m in sorted(set(members.tolist())):
        positions = [i for i in range(len(sims)) if members[i] == m]
        ranked = sorted(positions, key=lambda i: -float(sims[i]))
        out[m] = (float(np.mean([sims[i] for i in ranked[:k]])), ranked[0])
    return out


def test_top_k_mean_per_member_best_first() -> None:
    sims, members = arrays(
        [0.10, 0.90, 0.30, 0.80, 0.20, 0.70, 0.60, 0.50],
        [7, 3, 7, 3, 7, 5, 5, 3],
    )
    ids, scores, best = member_scores(sims, members, k=2)
    assert ids.tolist() == [3, 5, 7]
    np.testing.assert_allclose(scores, [(0.9 + 0.8) / 2, (0.7 + 0.6) / 2, (0.3 + 0.2) / 2], atol=1e-6)
    assert best.tolist() == [1, 5, 2]  # positions in `sims` of each member's best photo
    assert ids.dtype == np.int64 and scores.dtype == np.float32 and best.dtype == np.int64


def test_k_one_is_the_best_photo() -> None:
    sims, members = arrays([0.2, 0.5, 0.4, 0.9], [1, 1, 2, 2])
    ids, scores, best = member_scores(sims, members, k=1)
    assert ids.tolist() == [2, 1]
    np.testing.assert_allclose(scores, [0.9, 0.5], atol=1e-6)
    assert best.tolist() == [3, 1]


def test_many_photos_do_not_outvote_a_better_member() -> None:
    """Member 1 has many mediocre photos, member 2 two excellent ones: 2 wins (a plain count or sum would not)."""
    sims = [0.45] * 50 + [0.8, 0.75]
    members = [1] * 50 + [2, 2]
    ids, scores, _ = member_scores(*arrays(sims, members), k=3)
    assert ids.tolist() == [2, 1]
    np.testing.assert_allclose(scores, [(0.8 + 0.75) / 2, 0.45], atol=1e-6)


def test_members_with_fewer_than_k_photos_average_what_they_have() -> None:
    sims, members = arrays([0.6, 0.5, 0.4, 0.3, 0.55], [1, 1, 1, 1, 2])
    ids, scores, best = member_scores(sims, members, k=3)
    assert ids.tolist() == [2, 1]  # 0.55 alone beats (0.6 + 0.5 + 0.4) / 3 = 0.5
    np.testing.assert_allclose(scores, [0.55, 0.5], atol=1e-6)
    assert best.tolist() == [4, 0]


def test_negative_similarities() -> None:
    sims, members = arrays([-0.2, -0.1, -0.5, 0.05], [1, 1, 2, 2])
    ids, scores, best = member_scores(sims, members, k=2)
    assert ids.tolist() == [1, 2]  # -0.15 beats -0.225, though member 2 has the single best photo
    np.testing.assert_allclose(scores, [(-0.2 - 0.1) / 2, (-0.5 + 0.05) / 2], atol=1e-6)
    assert best.tolist() == [1, 3]


def test_empty_input() -> None:
    ids, scores, best = member_scores(np.zeros(0, np.float32), np.zeros(0, np.int64), k=3)
    assert ids.shape == scores.shape == best.shape == (0,)
    assert ids.dtype == np.int64 and scores.dtype == np.float32 and best.dtype == np.int64


def test_single_photo() -> None:
    ids, scores, best = member_scores(*arrays([0.42], [9]), k=3)
    assert ids.tolist() == [9] and best.tolist() == [0]
    np.testing.assert_allclose(scores, [0.42], atol=1e-6)


def test_ties_keep_every_member_once() -> None:
    sims, members = arrays([0.5, 0.5, 0.5, 0.5], [4, 2, 4, 2])
    ids, scores, best = member_scores(sims, members, k=2)
    assert sorted(ids.tolist()) == [2, 4]
    np.testing.assert_allclose(scores, [0.5, 0.5], atol=1e-6)
    for m, b in zip(ids, best, strict=True):
        assert members[b] == m


@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("seed", range(5))
def test_matches_brute_force_on_random_input(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 200))
    sims = rng.uniform(-1, 1, n).astype(np.float32)
    # sparse, unordered, large member ids
    members = rng.choice(np.array([3, 17, 42, 1000, 99_999, 5]), size=n).astype(np.int64)
    ids, scores, best = member_scores(sims, members, k=k)
    expected = brute_force(sims, members, k)
    assert sorted(ids.tolist()) == sorted(expected)
    assert len(set(ids.tolist())) == len(ids)
    assert np.all(np.diff(scores) <= 1e-7), "not sorted best first"
    for m, s, b in zip(ids.tolist(), scores.tolist(), best.tolist(), strict=True):
        assert s == pytest.approx(expected[m][0], abs=1e-5)
        assert members[b] == m
        assert sims[b] == sims[expected[m][1]]  # the best photo (ties may pick either position)


def norm_of(means: list[float], stds: list[float], pooled: tuple[float, float]) -> MemberNorm:
    return MemberNorm(
        np.arange(len(means), dtype=np.int64) * 10,
        np.array(means, np.float32),
        np.array(stds, np.float32),
        pooled[0],
        pooled[1],
    )


def test_each_members_map_is_increasing() -> None:
    norm = norm_of([0.05, -0.02, 0.01], [0.08, 0.04, 0.06], (0.01, 0.06))
    grid = np.linspace(-0.3, 0.9, 121).astype(np.float32)
    for member in (0, 10, 20):
        out = norm.apply(np.full(len(grid), member, np.int64), grid)
        assert np.all(np.diff(out) > 0)  # bounds on similarities stay bounds on scores
        assert np.all(out <= norm.ceiling(0.9) + 1e-6)
    assert norm.ceiling(0.3) == pytest.approx(max(0.3, 0.01 + 0.06 * (0.3 + 0.02) / 0.04))


def test_a_member_whom_strangers_resemble_anyway_is_marked_down() -> None:
    """Member 0's impostor scores run high (many photos, or a face near everyone's); member 10's are the pooled
    kind; member 20's are scattered (two photos): the same similarity scores lowest for member 0."""
    norm = norm_of([0.08, 0.01, 0.01], [0.09, 0.06, 0.09], (0.01, 0.06))
    out = norm.apply(np.array([0, 10, 20], np.int64), np.full(3, 0.3, np.float32))
    assert out[1] == pytest.approx(0.3)
    assert out[0] == pytest.approx(0.01 + 0.06 * (0.3 - 0.08) / 0.09, abs=1e-6)
    assert out[0] < out[2] < out[1]


def test_block_and_apply_agree_and_unknown_members_keep_their_score() -> None:
    norm = norm_of([0.05, -0.02, 0.01], [0.08, 0.04, 0.0], (0.01, 0.06))
    block = np.array([[0.3, 0.2, 0.5], [0.1, 0.4, -0.1]], np.float32)
    got = norm.block(block)
    for row, scores in zip(got, block, strict=True):
        np.testing.assert_allclose(row, norm.apply(np.array([0, 10, 20], np.int64), scores), atol=1e-7)
    assert got[0, 2] == pytest.approx(0.5)  # no spread: kept as it is
    assert norm.apply(np.array([5], np.int64), np.array([0.7], np.float32))[0] == pytest.approx(0.7)
    assert MemberNorm.identity().apply(np.array([1], np.int64), np.array([0.4], np.float32))[0] == pytest.approx(0.4)
