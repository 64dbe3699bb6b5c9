"""Per-member scores from per-photo similarities.

A member's score is the mean of their best k photo similarities (k = member_top_k, fewer when the member has
fewer photos). Ranking photos would repeat one member; a plain mean would punish members with varied photos;
the top-k mean lets a member with 500 photos and one with 20 compete on resemblance, not on count.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lookalike.pipeline.types import FloatArray

IntArray = npt.NDArray[np.int64]


def member_scores(sims: FloatArray, members: IntArray, *, k: int) -> tuple[IntArray, FloatArray, IntArray]:
    """Aggregate one query's photo similarities by member.

    Returns (member ids, scores, position of each member's best photo in `sims`), sorted by score, best first.
    """
    if sims.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64)
    order = np.lexsort((-sims, members))
    grouped = members[order]
    starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    keep = rank < k
    ids = grouped[starts]
    group_of = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(order)]))
    totals = np.bincount(group_of[keep], weights=sims[order][keep], minlength=len(starts))
    counts = np.bincount(group_of[keep], minlength=len(starts))
    scores = (totals / counts).astype(np.float32)
    best = order[starts]
    ranked = np.argsort(-scores, kind="stable")
    return ids[ranked], scores[ranked], best[ranked]


def member_top_k(sims: FloatArray, members: IntArray, *, k: int) -> FloatArray:
    """Each row's score for each member (np.unique order): the mean of the member's best k similarities in the
    row (fewer where fewer), as member_scores gives one row; -inf where the row has none of the member's
    (a similarity of -inf is a face left out). Summed best first in float64, as member_scores sums."""
    ids, inverse = np.unique(members, return_inverse=True)
    out = np.full((len(sims), len(ids)), -np.inf, dtype=np.float32)
    for j in range(len(ids)):
        block = sims[:, inverse == j]
        if block.shape[1] > k:
            block = np.partition(block, block.shape[1] - k, axis=1)[:, -k:]
        best = -np.sort(-block, axis=1)
        present = np.isfinite(best)
        n = present.sum(axis=1)
        totals = np.where(present, best, 0.0).astype(np.float64).cumsum(axis=1)
        rows = n > 0
        out[rows, j] = (totals[rows, n[rows] - 1] / n[rows]).astype(np.float32)
    return out
