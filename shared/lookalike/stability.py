"""How steady and how fair the answers for strangers are (`lookalike eval`).

Strangers are nearly every user. Two photos of one stranger should name the same member; no member should be the
answer for everyone; and a member's chance to be the answer should not grow with their photo count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations

import numpy as np
import numpy.typing as npt

from lookalike.index.scoring import IntArray
from lookalike.pipeline.types import FloatArray

# Query embeddings -> each query's top member ids (best first, at most 3); several queries at once.
RankTop = Callable[[FloatArray], list[list[int]]]
# Several photos' embeddings -> the combined query, or None where the request would be refused (different_people).
Combine = Callable[[FloatArray], FloatArray | None]


def pair_agreement(tops: Sequence[list[int]], identities: Sequence[str]) -> tuple[float | None, float | None]:
    """Over every pair of photos of one stranger: the share naming the same top member, and the share where the
    first photo's top member is among the second's top 3."""
    same: list[bool] = []
    within: list[bool] = []
    for who in sorted(set(identities)):
        idx = [i for i, ident in enumerate(identities) if ident == who]
        for a, b in combinations(idx, 2):
            if tops[a] and tops[b]:
                same.append(tops[a][0] == tops[b][0])
                within.append(tops[a][0] in tops[b][:3])
    return (_mean(same), _mean(within))


def two_photo_splits(idx: Sequence[int]) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Every way to pick two disjoint pairs of photos from `idx` (each unordered split once)."""
    out = []
    for four in combinations(idx, 4):
        first = four[0]
        for partner in four[1:]:
            rest = tuple(x for x in four[1:] if x != partner)
            out.append(((first, partner), (rest[0], rest[1])))
    return out


def pair_agreement_2photo(
    embeddings: FloatArray, identities: Sequence[str], *, combine: Combine, rank_top: RankTop
) -> tuple[float | None, int]:
    """Two photos of a stranger combined (as a request with two photos is) against two others: the share naming
    the same top member, averaged per stranger (a stranger with 5 photos has 15 splits, one with 4 has 3), and
    the number of splits a two-photo request would have refused as different people."""
    queries: list[FloatArray] = []
    owners: list[str] = []
    refused = 0
    for who in sorted(set(identities)):
        idx = [i for i, ident in enumerate(identities) if ident == who]
        for first, second in two_photo_splits(idx):
            a, b = combine(embeddings[list(first)]), combine(embeddings[list(second)])
            if a is None or b is None:
                refused += 1
                continue
            queries.extend((a, b))
            owners.append(who)
    if not queries:
        return None, refused
    tops = rank_top(np.stack(queries))
    per: dict[str, list[bool]] = {}
    for n, who in enumerate(owners):
        x, y = tops[2 * n], tops[2 * n + 1]
        per.setdefault(who, []).append(bool(x and y and x[0] == y[0]))
    return _mean([float(np.mean(v)) for v in per.values()]), refused


def hub_share(tops: Sequence[list[int]], members: IntArray) -> tuple[float | None, float | None]:
    """The largest share of stranger photos one member gets as the top member, and what that largest share would
    typically be (median of 2,000 draws) if every photo's top member were drawn uniformly at random: the floor no
    ranking can beat, since photos of one stranger that agree add up."""
    firsts = [t[0] for t in tops if t]
    if not firsts or len(members) == 0:
        return None, None
    ids = np.unique(members)
    counts = np.array([firsts.count(int(m)) for m in ids])
    rng = np.random.default_rng(0)
    draws = [np.bincount(rng.integers(0, len(ids), len(firsts)), minlength=len(ids)).max() for _ in range(2000)]
    return round(float(counts.max() / len(firsts)), 4), round(float(np.median(draws) / len(firsts)), 4)


def count_bias(tops: Sequence[list[int]], members: IntArray, photo_counts: dict[int, int]) -> float | None:
    """Spearman correlation, over members, of a member's photo count with their share of stranger photos as the
    top member (0: the count does not matter)."""
    firsts = [t[0] for t in tops if t]
    ids = [int(m) for m in np.unique(members)]
    counts = np.array([photo_counts.get(m, 0) for m in ids], np.float64)
    shares = np.array([firsts.count(m) for m in ids], np.float64)
    if len(ids) < 3 or counts.std() == 0 or shares.std() == 0:
        return None
    return round(float(np.corrcoef(_ranks(counts), _ranks(shares))[0, 1]), 4)


def _ranks(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Ranks with ties averaged (Spearman's convention)."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=np.float64)
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def _mean(values: Sequence[bool] | Sequence[float]) -> float | None:
    return round(float(np.mean(values)), 4) if len(values) else None
