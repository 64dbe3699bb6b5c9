"""The impostor tail: how high a stranger's best score gets, estimated from the bulk of the scores.

A stranger's best score is the maximum over every member of the gallery, and maxima follow an extreme-value
(Gumbel) law. Its two parameters are fitted to the median and the 95th percentile of the impostor scores, so a
handful of wrong photos in the top few percent (a member filed twice, a photo under the wrong name) cannot move
the fit, while the fitted law still extrapolates the tail a small gallery has too few scores to see. On the
reference galleries of ../shared/data/faces, the median/90th fit missed one genuine probe of the East Asian set
at 0.001 and the 75th/95th fit let 0.55% of LFW strangers through at 0.001; the median/95th fit met both
(docs/matching.md has the table).
"""

from __future__ import annotations

import math

import numpy as np

from lookalike.pipeline.types import FloatArray

FIT_QUANTILES = (0.5, 0.95)


def _reduced(p: float) -> float:
    """The standard Gumbel quantile: -ln(-ln p)."""
    return -math.log(-math.log(p))


def gumbel_fit(scores: FloatArray) -> tuple[float, float]:
    """(location, scale) of the Gumbel law whose FIT_QUANTILES are those of `scores`."""
    lo, hi = FIT_QUANTILES
    q_lo, q_hi = (float(v) for v in np.quantile(scores, FIT_QUANTILES))
    scale = max((q_hi - q_lo) / (_reduced(hi) - _reduced(lo)), 1e-6)
    return q_lo - scale * _reduced(lo), scale


def gumbel_quantile(location: float, scale: float, p: float) -> float:
    return location + scale * _reduced(p)


def tail_threshold(fitted: FloatArray, observed: FloatArray, target_fmr: float) -> float:
    """The score a share `target_fmr` of strangers reaches: the fitted (1 - target_fmr) quantile of `fitted`,
    never below the empirical quantile of `observed` ('higher': with fewer than 1/target_fmr scores that is
    their maximum, so the threshold is never below a score that was actually seen)."""
    if fitted.size == 0 and observed.size == 0:
        raise ValueError("no impostor scores")
    candidates = []
    if fitted.size:
        candidates.append(gumbel_quantile(*gumbel_fit(fitted), 1.0 - target_fmr))
    if observed.size:
        candidates.append(float(np.quantile(observed, 1.0 - target_fmr, method="higher")))
    return max(candidates)
