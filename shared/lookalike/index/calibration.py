"""Per-gallery calibration: the match threshold and the resemblance mapping, from the gallery itself.

Strangers of the gallery's own demographic score much higher than others (an East Asian stranger against an
East Asian gallery), so one global threshold is wrong. Each member in turn plays the stranger: their photos are
scored against every other member (leave-one-member-out), which gives impostor scores that look like the
gallery's own people. The threshold is the (1 - target_fmr) quantile of the best impostor score per photo
(empirical, or from a normal fit of their tail where there are too few to see it).
Genuine scores (each photo against the rest of its own member) anchor the top of the resemblance scale.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from statistics import NormalDist

import numpy as np

from lookalike.index.scoring import IntArray, member_top_k
from lookalike.pipeline.types import FloatArray

# Used only when a gallery has too few members to score strangers against (fewer than two).
FALLBACK_THRESHOLD = 0.35
PERCENTILES = (1, 5, 25, 50, 75, 95, 99)
# Histogram bins of the admin console's genuine/impostor chart: cosine similarity -0.2..1.0 in steps of 0.05.
HISTOGRAM_EDGES = [round(-0.2 + 0.05 * i, 2) for i in range(25)]


@dataclass(frozen=True)
class Calibration:
    threshold: float
    target_fmr: float
    impostor: dict[str, float]
    genuine: dict[str, float]
    n_impostor: int
    n_genuine: int
    # Similarity -> resemblance % anchors (monotone, piecewise linear); see README "Resemblance".
    anchors: list[tuple[float, float]]
    # Of n_impostor: faces curation rejected as other people (scraped lookalikes), scored against the gallery.
    n_rejected: int = 0
    # {"edges": [...], "genuine": [counts], "impostor": [counts]}; empty on versions built before it existed.
    histogram: dict[str, list[float]] = field(default_factory=dict)

    def resemblance(self, similarity: float) -> float:
        xs, ys = zip(*self.anchors, strict=True)
        return round(float(np.interp(similarity, xs, ys)), 1)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Calibration:
        values = dict(data)
        values["anchors"] = [tuple(a) for a in values["anchors"]]  # type: ignore[attr-defined]
        return cls(**values)  # type: ignore[arg-type]


# Similarity rows scored at a time by the leave-one-out: bounds its memory (rows x faces float32) to 64 MB.
_CELLS = 16 * 2**20


def _leave_one_out(embeddings: FloatArray, members: IntArray, k: int) -> tuple[FloatArray, FloatArray]:
    """(genuine, impostor) scores, in face order: each face against every other face of the gallery, its own
    member's score where the member has other faces, and the best other member's score where there is one. All
    rows at once per member block instead of one member_scores call per face (4000 faces: 3.9 s -> 0.47 s)."""
    n = len(embeddings)
    _, inverse = np.unique(members, return_inverse=True)
    genuine, impostor = [], []
    step = max(1, _CELLS // max(n, 1))
    for start in range(0, n, step):
        rows = np.arange(start, min(n, start + step))
        sims = embeddings[rows] @ embeddings.T
        sims[np.arange(len(rows)), rows] = -np.inf  # the face itself
        scores = member_top_k(sims, members, k=k)
        own = scores[np.arange(len(rows)), inverse[rows]]
        scores[np.arange(len(rows)), inverse[rows]] = -np.inf
        genuine.append(own[np.isfinite(own)])
        others = scores.max(axis=1)  # at least one member: the face's own
        impostor.append(others[np.isfinite(others)])
    empty = np.zeros(0, np.float32)
    return np.concatenate(genuine or [empty]), np.concatenate(impostor or [empty])


def _percentiles(values: FloatArray) -> dict[str, float]:
    if values.size == 0:
        return {}
    return {f"p{p}": round(float(np.percentile(values, p)), 4) for p in PERCENTILES}


def histogram(genuine: FloatArray, impostor: FloatArray) -> dict[str, list[float]]:
    edges = np.asarray(HISTOGRAM_EDGES)
    # Scores outside the range land in the end bins rather than vanish from the chart.
    lo, hi = edges[0], edges[-1] - 1e-6

    def counts(values: FloatArray) -> list[float]:
        return [float(c) for c in np.histogram(np.clip(values, lo, hi), bins=edges)[0]]

    return {"edges": list(HISTOGRAM_EDGES), "genuine": counts(genuine), "impostor": counts(impostor)}


def resemblance_anchors(threshold: float, impostor_median: float, genuine_median: float) -> list[tuple[float, float]]:
    """0% at similarity 0, 25% at the typical stranger, 50% at the threshold, 90% at the typical same-person
    score, 100% at 1. Anchors are forced increasing so the mapping stays monotone on odd galleries."""
    imp = min(max(impostor_median, 0.01), threshold - 0.01)
    gen = max(genuine_median, threshold + 0.05)
    return [(-1.0, 0.0), (0.0, 0.0), (imp, 25.0), (threshold, 50.0), (min(gen, 0.99), 90.0), (1.0, 100.0)]


def calibrate(
    embeddings: FloatArray,
    members: IntArray,
    *,
    k: int,
    target_fmr: float,
    rejected: FloatArray | None = None,
) -> Calibration:
    """`rejected`: embeddings of faces known to be other people (wrong photos curation dropped): impostors
    that look like the gallery's own, scored against all members."""
    unique = np.unique(members)
    gen, own = _leave_one_out(embeddings, members, k)
    # The normal fit below describes the gallery's own people only: rejected faces are a mix (a lookalike, a
    # stranger of another demographic) whose spread would inflate the fitted tail; they count empirically.
    imp = own
    n_rejected = 0
    if rejected is not None and rejected.size and embeddings.size:
        imp = np.concatenate([own, np.max(member_top_k(rejected @ embeddings.T, members, k=k), axis=1)])
        n_rejected = len(rejected)
    if len(unique) < 2 or imp.size == 0:
        threshold = FALLBACK_THRESHOLD
    else:
        # 'higher' never interpolates below an observed impostor: with few samples this is their maximum. A small
        # gallery has too few impostor scores to see its tail, so a normal fit extrapolates it as well.
        empirical = float(np.quantile(imp, 1.0 - target_fmr, method="higher"))
        fitted = float(own.mean() + NormalDist().inv_cdf(1.0 - target_fmr) * own.std()) if own.size else empirical
        threshold = max(empirical, fitted)
    imp_med = float(np.median(imp)) if imp.size else threshold - 0.15
    gen_med = float(np.median(gen)) if gen.size else threshold + 0.25
    return Calibration(
        threshold=round(threshold, 4),
        target_fmr=target_fmr,
        impostor=_percentiles(imp),
        genuine=_percentiles(gen),
        n_impostor=int(imp.size),
        n_genuine=int(gen.size),
        anchors=resemblance_anchors(threshold, imp_med, gen_med),
        n_rejected=n_rejected,
        histogram=histogram(gen, imp),
    )
