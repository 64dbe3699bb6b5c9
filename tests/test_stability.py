"""The steadiness and fairness measures of `lookalike eval`, on hand-made answers."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.stability import count_bias, hub_share, pair_agreement, pair_agreement_2photo, two_photo_splits


def test_pair_agreement_counts_pairs_within_each_stranger() -> None:
    tops = [[1, 2, 3], [1, 3, 2], [2, 1, 3], [5, 6, 7], [6, 5, 7]]
    who = ["a", "a", "a", "b", "b"]
    same, top3 = pair_agreement(tops, who)
    # a: (0,1) same; (0,2) no, but 1 in [2,1,3]; (1,2) no, 1 in [2,1,3]. b: (3,4) no, 5 in [6,5,7].
    assert same == pytest.approx(1 / 4)
    assert top3 == pytest.approx(4 / 4)
    assert pair_agreement([[1]], ["a"]) == (None, None)


@pytest.mark.parametrize(("photos", "splits"), [(3, 0), (4, 3), (5, 15), (6, 45)])
def test_two_photo_splits_are_every_disjoint_pair_of_pairs(photos: int, splits: int) -> None:
    got = two_photo_splits(list(range(photos)))
    assert len(got) == splits
    for first, second in got:
        assert len(set(first) | set(second)) == 4
    assert len({frozenset((frozenset(a), frozenset(b))) for a, b in got}) == splits


def test_pair_agreement_2photo_combines_and_averages_per_stranger() -> None:
    """Stranger a (4 photos): both halves always name member 1; stranger b (4 photos): never the same; stranger c
    (4 photos) is refused as different people by the combiner. Mean over a and b: 0.5."""
    emb = np.eye(12, dtype=np.float32)
    who = ["a"] * 4 + ["b"] * 4 + ["c"] * 4

    def combine(photos: np.ndarray) -> np.ndarray | None:
        if photos[:, 8:].any():
            return None
        return photos.sum(axis=0)

    def rank_top(queries: np.ndarray) -> list[list[int]]:
        return [[1] if q[:4].any() else [int(np.flatnonzero(q)[0])] for q in queries]

    agreement, refused = pair_agreement_2photo(emb, who, combine=combine, rank_top=rank_top)
    assert agreement == pytest.approx(0.5)
    assert refused == 3


def test_hub_share_and_its_uniform_floor() -> None:
    members = np.arange(10, dtype=np.int64)
    tops = [[0]] * 6 + [[m] for m in range(1, 10)] * 2
    share, floor = hub_share(tops, members)
    assert share == pytest.approx(6 / 24)
    assert floor is not None and 1 / 10 <= floor < share


def test_count_bias_is_spearman_of_photo_count_and_share() -> None:
    members = np.array([1, 2, 3, 4], np.int64)
    counts = {1: 2, 2: 3, 3: 4, 4: 9}
    more_photos_more_often = [[1]] + [[2]] * 2 + [[3]] * 3 + [[4]] * 4
    assert count_bias(more_photos_more_often, members, counts) == pytest.approx(1.0)
    fewer = [[1]] * 4 + [[2]] * 3 + [[3]] * 2 + [[4]]
    assert count_bias(fewer, members, counts) == pytest.approx(-1.0)
    ties = [[1]] * 2 + [[2]] * 2 + [[3]] + [[4]]
    # Ranks with ties averaged: counts 1,2,3,4 against shares 3.5,3.5,1.5,1.5.
    expected = np.corrcoef([1, 2, 3, 4], [3.5, 3.5, 1.5, 1.5])[0, 1]
    assert count_bias(ties, members, counts) == pytest.approx(expected, abs=1e-4)
    assert count_bias([[1]] * 4, members, {1: 2, 2: 2, 3: 2, 4: 2}) is None
