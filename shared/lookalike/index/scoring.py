"""Per-member scores from per-photo similarities.

A member's score is the mean of their best k photo similarities (k = member_top_k, fewer when the member has
fewer photos). Ranking photos would repeat one member; a plain mean would punish members with varied photos;
the top-k mean lets a member with 500 photos and one with 20 compete on resemblance, not on count.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    if sims.size < 100 * len(ids):
        # A few rows against many members (a query against the crowd: 1 row, 340 faces of 69 people): one sort of
        # every row beats a loop of small numpy calls per member (0.04 ms against 0.9), with the same sums.
        _top_k_sorted(sims, inverse, len(ids), k, out)
        return out
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


def _top_k_sorted(sims: FloatArray, inverse: IntArray, n_ids: int, k: int, out: FloatArray) -> None:
    """member_top_k by one sort: columns grouped by member, best first within each, the first k finite ones of a
    group summed in float64 in that order (so the same sums as the loop's cumsum)."""
    order = np.argsort(inverse, kind="stable")
    groups = inverse[order]
    starts = np.searchsorted(groups, np.arange(n_ids))
    grouped = sims[:, order]
    ranked = np.lexsort((-grouped, np.broadcast_to(groups, grouped.shape)), axis=-1)
    best = np.take_along_axis(grouped, ranked, axis=1)
    use = (np.arange(len(groups)) - starts[groups] < k) & np.isfinite(best)
    totals = np.add.reduceat(np.where(use, best, 0.0).astype(np.float64), starts, axis=1)
    n = np.add.reduceat(use, starts, axis=1)
    rows = n > 0
    out[rows] = (totals[rows] / n[rows]).astype(np.float32)


@dataclass(frozen=True)
class MemberNorm:
    """Puts every member's scores on one scale: how far above the scores strangers of the gallery's own kind get
    against that member a face's score is.

    A member with many photos (the best k of 500 beat the best k of 20 by chance) or with a face near everyone's
    (a hub) draws high scores from every stranger; one with two photos draws scattered ones. Each member's impostor
    scores (every other member's face scored against it) have a mean and a spread, and a score becomes
    pooled_mean + pooled_std * (score - mean_m) / std_m: the pooled scale of the gallery, in cosine units (Z-norm).
    On lfw_lookalike this took the correlation of a member's photo count with their share of strangers' answers
    from 0.22 to 0.02 (docs/matching.md).
    """

    member_ids: IntArray  # sorted
    mean: FloatArray
    std: FloatArray
    pooled_mean: float
    pooled_std: float

    @classmethod
    def identity(cls) -> MemberNorm:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32), 0.0, 0.0)

    def _map(self, scores: FloatArray, mean: FloatArray, std: FloatArray) -> FloatArray:
        if self.pooled_std <= 0:
            return scores
        safe = np.where(std > 0, std, 1.0)
        pooled = self.pooled_mean + self.pooled_std * (scores - mean) / safe
        out: FloatArray = np.where(std > 0, pooled, scores).astype(np.float32)
        return out

    def apply(self, member_ids: IntArray, scores: FloatArray) -> FloatArray:
        """Scores of the given members (any order; members without statistics keep theirs)."""
        if len(self.member_ids) == 0 or len(member_ids) == 0:
            return scores.astype(np.float32)
        at = np.clip(np.searchsorted(self.member_ids, member_ids), 0, len(self.member_ids) - 1)
        known = self.member_ids[at] == member_ids
        mean = np.where(known, self.mean[at], 0.0)
        std = np.where(known, self.std[at], 0.0)
        return self._map(scores, mean, std)

    def block(self, scores: FloatArray) -> FloatArray:
        """A block of rows x members whose columns are `member_ids` in order (member_top_k's np.unique order)."""
        if len(self.member_ids) == 0:
            return scores
        return self._map(scores, self.mean[None, :], self.std[None, :])

    def ceiling(self, similarity: float) -> float:
        """The highest score any member can have at this similarity (each member's map is increasing)."""
        if len(self.member_ids) == 0:
            return similarity
        mapped = self._map(np.full(len(self.member_ids), similarity, np.float32), self.mean, self.std)
        return max(float(mapped.max()), similarity)
