"""The impostor tail: a Gumbel law fitted to the bulk of the scores, which a few outliers cannot move."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.index.tail import gumbel_fit, gumbel_quantile, tail_threshold


def gumbel_sample(location: float, scale: float, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).gumbel(location, scale, n).astype(np.float32)


def test_the_fit_recovers_the_law() -> None:
    scores = gumbel_sample(0.18, 0.022, 20_000, seed=1)
    location, scale = gumbel_fit(scores)
    assert location == pytest.approx(0.18, abs=0.002)
    assert scale == pytest.approx(0.022, rel=0.05)
    # Its 0.999 quantile is where 1 in 1000 of a fresh sample lands.
    fresh = gumbel_sample(0.18, 0.022, 200_000, seed=2)
    assert np.mean(fresh >= gumbel_quantile(location, scale, 0.999)) == pytest.approx(0.001, abs=0.0004)


def test_a_few_outliers_do_not_move_it() -> None:
    scores = gumbel_sample(0.18, 0.022, 650, seed=3)
    spoiled = np.concatenate([scores, np.full(6, 0.68, np.float32)])  # six wrong photos at a genuine score
    clean_t = gumbel_quantile(*gumbel_fit(scores), 0.999)
    assert abs(gumbel_quantile(*gumbel_fit(spoiled), 0.999) - clean_t) < 0.01
    # The empirical 0.999 quantile of 656 scores is their maximum: one wrong photo would set it.
    assert np.quantile(spoiled, 0.999, method="higher") == pytest.approx(0.68)


def test_the_threshold_is_never_below_a_score_that_was_seen() -> None:
    """Too few scores to see a 0.001 tail: the fit extrapolates, but a fit that lands below an observed impostor
    score (a flat sample) gives way to that score."""
    flat = np.array([0.2, 0.21, 0.2, 0.21, 0.2, 0.2, 0.21, 0.2, 0.2, 0.45], np.float32)
    assert tail_threshold(flat[:9], flat, 0.001) == pytest.approx(0.45)
    few = gumbel_sample(0.2, 0.03, 25, seed=4)
    t = tail_threshold(few, few, 0.001)
    assert t >= few.max()
    assert t == pytest.approx(max(gumbel_quantile(*gumbel_fit(few), 0.999), few.max()))


def test_no_scores_is_an_error() -> None:
    with pytest.raises(ValueError):
        tail_threshold(np.zeros(0, np.float32), np.zeros(0, np.float32), 0.001)
