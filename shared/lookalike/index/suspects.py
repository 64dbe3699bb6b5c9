"""Suspected label errors: gallery photos that score like the same person against another member.

Members scored against each other are the calibration's picture of strangers. One wrong photo breaks that
picture: a photo of A filed under B scores like A's own photos against A, and a man filed under two names scores
like himself against both. Such a score is a finding (almost always a wrong photo, sometimes twins), not a
stranger, so it is reported and kept out of the calibration.

A face is suspect when its best score against another member reaches the same-person level: the identity
threshold at a false match rate of 0.001 (or the service's target, if stricter) fitted without the suspects found
so far, or the gallery's own genuine range (its 10th percentile) where that is lower (East Asian galleries, whose
genuine and impostor ranges overlap). Faces that look more like the other member than like their own go first
(filed under the wrong member); only when none is left are faces that look like both flagged (one person under
two names, twins). Each round removes the most suspect face of each pair of members and fits again, until a round
finds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lookalike.index.loo import LeaveOneOut, leave_one_out
from lookalike.index.scoring import IntArray
from lookalike.index.tail import gumbel_fit, gumbel_quantile
from lookalike.pipeline.types import FloatArray

GENUINE_QUANTILE = 0.1
# The same-person level a suspect must reach, whatever false match rate the service is tuned to: a looser target
# (0.01) must not turn the tail of honest impostor scores into suspects.
SUSPECT_FMR = 0.001
# Each round takes one photo per pair of members; a gallery with more rounds' worth of wrong photos keeps the rest
# in its calibration (the fitted tail still holds: it rests on the bulk of the scores).
MAX_ROUNDS = 32


@dataclass(frozen=True)
class Suspect:
    """Face `face` (its member `member`) scores `score` against member `other_member`, whose closest photo is face
    `other_face` (photo to photo: `similarity`); against its own member it scores `own` (None: its only face)."""

    face: int
    member: int
    other_face: int
    other_member: int
    similarity: float
    score: float
    own: float | None
    # "wrong_member": looks more like the other member than its own; "both": like both (one person, two names).
    kind: str


@dataclass(frozen=True)
class Screened:
    kept: IntArray  # positions of the faces the calibration uses
    loo: LeaveOneOut  # of the kept faces
    suspects: list[Suspect]


def screen(embeddings: FloatArray, members: IntArray, *, k: int, target_fmr: float) -> Screened:
    kept = np.arange(len(embeddings))
    suspects: list[Suspect] = []
    for _ in range(MAX_ROUNDS):
        loo = leave_one_out(embeddings[kept], members[kept], k=k)
        impostor, genuine = loo.impostor, loo.genuine
        if impostor.size < 2:
            break
        bar = gumbel_quantile(*gumbel_fit(impostor), 1.0 - min(target_fmr, SUSPECT_FMR))
        if genuine.size:
            bar = min(bar, float(np.quantile(genuine, GENUINE_QUANTILE)))
        high = np.isfinite(loo.other) & (loo.other >= bar)
        wrong = high & (~np.isfinite(loo.own) | (loo.other >= loo.own))
        found = _one_per_pair(loo, members[kept], np.flatnonzero(wrong if wrong.any() else high))
        if found.size == 0:
            break
        suspects.extend(_describe(embeddings, members, kept, loo, found, "wrong_member" if wrong.any() else "both"))
        kept = np.delete(kept, found)
    else:
        loo = leave_one_out(embeddings[kept], members[kept], k=k)
    return Screened(kept, loo, suspects)


def _one_per_pair(loo: LeaveOneOut, members: IntArray, rows: IntArray) -> IntArray:
    """Of the candidates, the most suspect one per pair of members: the photo with the least to vouch for it (no
    other photo of its member, then the largest lead of the other member over its own). Its removal changes the
    pair's other scores, so the rest wait for the next round: one person under two names loses the newcomer's
    photo, not the original member's photos that merely look like it."""
    lead = np.where(np.isfinite(loo.own[rows]), loo.other[rows] - loo.own[rows], np.inf)
    chosen: dict[frozenset[int], tuple[float, int]] = {}
    for row, value in zip(rows, lead, strict=True):
        pair = frozenset((int(members[row]), int(loo.member_ids[loo.other_member[row]])))
        if pair not in chosen or value > chosen[pair][0]:
            chosen[pair] = (float(value), int(row))
    return np.array(sorted(row for _, row in chosen.values()), np.int64)


def _describe(
    embeddings: FloatArray, members: IntArray, kept: IntArray, loo: LeaveOneOut, found: IntArray, kind: str
) -> list[Suspect]:
    out = []
    for row in found:
        face = int(kept[row])
        other_member = int(loo.member_ids[loo.other_member[row]])
        candidates = kept[members[kept] == other_member]
        sims = embeddings[candidates] @ embeddings[face]
        best = int(np.argmax(sims))
        own = float(loo.own[row])
        out.append(
            Suspect(
                face=face,
                member=int(members[face]),
                other_face=int(candidates[best]),
                other_member=other_member,
                similarity=round(float(sims[best]), 4),
                score=round(float(loo.other[row]), 4),
                own=round(own, 4) if np.isfinite(own) else None,
                kind=kind,
            )
        )
    return out
