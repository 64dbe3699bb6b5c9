"""Per-gallery calibration: the two thresholds behind the three verdicts, and the resemblance map.

Each member in turn plays the stranger: their photos are scored against every other member (leave-one-member-
out), which gives impostor scores of the gallery's own kind of people. From them, once per index version:

* `same_person` ("so close it could be them"): the cosine similarity a share `target_fmr` of strangers reaches,
  from an extreme-value fit of the impostor scores' bulk (index/tail.py), after photos that score like the same
  person against another member are set aside as suspected label errors (index/suspects.py). A bootstrap over
  members says how sure it is.
* `lookalike`: a quantile of the lookalike score members get against each other. The lookalike score is a face's
  member score (its similarity on the gallery's pooled scale, scoring.MemberNorm) minus its score against the
  closest person of a fixed reference crowd (index/crowd.py): resembling the member more than the people one
  resembles anyway.

The resemblance % is a monotone map of the lookalike score with 50 % at the lookalike threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from lookalike.index.crowd import EMPTY, Crowd
from lookalike.index.loo import impostor_moments, leave_one_out
from lookalike.index.scoring import IntArray, MemberNorm, member_top_k
from lookalike.index.suspects import Suspect, screen
from lookalike.index.tail import gumbel_fit, tail_threshold
from lookalike.pipeline.types import FloatArray
from lookalike.schemas import Verdict

# Used only when a gallery has too few members to score strangers against (fewer than two).
FALLBACK_THRESHOLD = 0.35
PERCENTILES = (1, 5, 25, 50, 75, 95, 99)
# Histogram bins of the admin console's charts: similarity -0.2..1.0, lookalike score -0.6..0.6, steps of 0.05.
HISTOGRAM_EDGES = [round(-0.2 + 0.05 * i, 2) for i in range(25)]
LOOKALIKE_EDGES = [round(-0.6 + 0.05 * i, 2) for i in range(25)]
# Lookalike score below the gallery's 5th percentile where resemblance reaches 0 % (a woman's face against a
# gallery of men, or the reverse, lies 0.4-0.7 below it with buffalo_s).
ZERO_BELOW = 0.3
# Bootstrap over members: replicates and the interval's coverage (5th to 95th percentile).
BOOTSTRAP = 200
INTERVAL = (5.0, 95.0)


@dataclass(frozen=True)
class Calibration:
    threshold: float  # same_person: cosine similarity of the best member
    target_fmr: float
    impostor: dict[str, float]
    genuine: dict[str, float]
    n_impostor: int
    n_genuine: int
    # Lookalike score -> resemblance % anchors (monotone, piecewise linear); docs/matching.md "Resemblance".
    anchors: list[tuple[float, float]]
    # Of n_impostor: faces curation rejected as other people (scraped lookalikes), scored against the gallery.
    n_rejected: int = 0
    # {"edges", "genuine", "impostor"} counts of similarity, and "lookalike": the same for the lookalike score.
    histogram: dict[str, Any] = field(default_factory=dict)
    # Versions built before the three verdicts lack the fields below: from_dict makes them answer as before
    # (lookalike threshold = threshold, no member scale, no crowd: the lookalike score is the similarity).
    threshold_interval: list[float] = field(default_factory=list)
    lookalike_threshold: float | None = None
    lookalike_quantile: float | None = None
    lookalike_interval: list[float] = field(default_factory=list)
    lookalike: dict[str, float] = field(default_factory=dict)  # percentiles of the members' lookalike scores
    # Member id (as a string: JSON) -> [mean, std] of its impostor scores; pooled: [mean, std] of all of them.
    member_norm: dict[str, list[float]] = field(default_factory=dict)
    pooled: list[float] = field(default_factory=list)
    # The reference crowd used: its digest, people in it, and people left out because they look like a member.
    crowd: dict[str, Any] = field(default_factory=dict)
    tail: dict[str, float] = field(default_factory=dict)  # the fitted Gumbel law: location, scale
    n_suspects: int = 0
    # Suspected label errors, filled in by the index builder with photo ids and member slugs (index/builder.py).
    suspects: list[dict[str, Any]] = field(default_factory=list)

    @property
    def lookalike_cut(self) -> float:
        return self.threshold if self.lookalike_threshold is None else self.lookalike_threshold

    def verdict(self, similarity: float, lookalike_score: float) -> Verdict:
        """same_person on the best member's similarity, lookalike on its lookalike score, else no_match."""
        if similarity >= self.threshold:
            return "same_person"
        if lookalike_score >= self.lookalike_cut:
            return "lookalike"
        return "no_match"

    def resemblance(self, lookalike_score: float) -> float:
        xs, ys = zip(*self.anchors, strict=True)
        return round(float(np.interp(lookalike_score, xs, ys)), 1)

    def norm(self) -> MemberNorm:
        if not self.member_norm or len(self.pooled) != 2:
            return MemberNorm.identity()
        ids = sorted(int(m) for m in self.member_norm)
        stats = np.array([self.member_norm[str(m)] for m in ids], np.float32).reshape(-1, 2)
        return MemberNorm(np.array(ids, np.int64), stats[:, 0], stats[:, 1], self.pooled[0], self.pooled[1])

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Calibration:
        values = dict(data)
        values["anchors"] = [tuple(a) for a in values["anchors"]]  # type: ignore[attr-defined]
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Calibrated:
    calibration: Calibration
    suspects: list[Suspect]  # face positions in the embeddings given
    crowd: Crowd  # the crowd the version scores against (people who look like a member left out)


def _percentiles(values: FloatArray) -> dict[str, float]:
    if values.size == 0:
        return {}
    return {f"p{p}": round(float(np.percentile(values, p)), 4) for p in PERCENTILES}


def _counts(values: FloatArray, edges: list[float]) -> list[float]:
    bins = np.asarray(edges)
    # Scores outside the range land in the end bins rather than vanish from the chart.
    clipped = np.clip(values, bins[0], bins[-1] - 1e-6)
    return [float(c) for c in np.histogram(clipped, bins=bins)[0]]


def histogram(
    genuine: FloatArray, impostor: FloatArray, *, lookalike: tuple[FloatArray, FloatArray] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "edges": list(HISTOGRAM_EDGES),
        "genuine": _counts(genuine, HISTOGRAM_EDGES),
        "impostor": _counts(impostor, HISTOGRAM_EDGES),
    }
    if lookalike is not None:
        out["lookalike"] = {
            "edges": list(LOOKALIKE_EDGES),
            "genuine": _counts(lookalike[0], LOOKALIKE_EDGES),
            "impostor": _counts(lookalike[1], LOOKALIKE_EDGES),
        }
    return out


def resemblance_anchors(threshold: float, low: float, genuine_median: float) -> list[tuple[float, float]]:
    """0 % at ZERO_BELOW under the gallery's least alike members, 25 % at them (`low`: the 5th percentile of the
    members' lookalike scores against each other), 50 % at the lookalike threshold, 90 % at the typical
    same-person score, 100 % at 1. Anchors are forced increasing so the map stays monotone on odd galleries."""
    low = min(low, threshold - 0.01)
    gen = min(max(genuine_median, threshold + 0.05), 0.99)
    return [(-1.0, 0.0), (low - ZERO_BELOW, 0.0), (low, 25.0), (threshold, 50.0), (gen, 90.0), (1.0, 100.0)]


def _by_member(values: FloatArray, members: IntArray) -> list[FloatArray]:
    return [values[members == m] for m in np.unique(members)]


def bootstrap_interval(
    blocks: list[FloatArray], statistic: Callable[[FloatArray], float], *, seed: int = 0, replicates: int = BOOTSTRAP
) -> list[float]:
    """The 90 % interval of `statistic` over resamples of whole members (their scores move together: one member
    who resembles another lifts all of their photos)."""
    blocks = [b for b in blocks if b.size]
    if len(blocks) < 2:
        return []
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(replicates):
        pick = rng.integers(0, len(blocks), len(blocks))
        values.append(statistic(np.concatenate([blocks[i] for i in pick])))
    return [round(float(v), 4) for v in np.percentile(values, INTERVAL)]


def calibrate(
    embeddings: FloatArray,
    members: IntArray,
    *,
    k: int,
    target_fmr: float,
    lookalike_quantile: float,
    rejected: FloatArray | None = None,
    crowd: Crowd = EMPTY,
) -> Calibrated:
    """`rejected`: embeddings of faces known to be other people (wrong photos curation dropped): impostors that
    look like the gallery's own, scored against all members."""
    if len(np.unique(members)) < 2:
        return _too_small(embeddings, members, k=k, target_fmr=target_fmr)
    screened = screen(embeddings, members, k=k, target_fmr=target_fmr)
    emb, mem, loo = embeddings[screened.kept], members[screened.kept], screened.loo
    own, gen = loo.impostor, loo.genuine
    if own.size == 0:  # every other member's photos were suspects: nobody left to play the stranger
        small = _too_small(emb, mem, k=k, target_fmr=target_fmr)
        return Calibrated(replace(small.calibration, n_suspects=len(screened.suspects)), screened.suspects, EMPTY)
    rejected_scores = np.zeros(0, np.float32)
    if rejected is not None and rejected.size:
        rejected_scores = np.max(member_top_k(rejected @ emb.T, mem, k=k), axis=1)
    observed = np.concatenate([own, rejected_scores])
    threshold = tail_threshold(own, observed, target_fmr)
    interval = bootstrap_interval(
        _by_member(loo.other, mem), lambda s: tail_threshold(s[np.isfinite(s)], s[np.isfinite(s)], target_fmr)
    )

    moments = impostor_moments(emb, mem, k=k)
    mean, std = moments.mean, moments.std
    norm = MemberNorm(np.unique(mem), mean, std, moments.pooled_mean, moments.pooled_std)
    # A crowd person who scores like the same person against a member is that member (or their twin): left out.
    lookalike_members = member_top_k(crowd.embeddings @ emb.T, mem, k=k) if len(crowd.embeddings) else None
    if lookalike_members is not None:
        same = np.flatnonzero(lookalike_members.max(axis=1) >= threshold)
        crowd = crowd.without(np.unique(crowd.person_ids[same]))
    crowd_best = crowd.best(emb, k=k)
    normed = leave_one_out(emb, mem, k=k, score_map=norm.block)
    look_imp = normed.other - crowd_best
    look_gen = normed.own - crowd_best
    look_imp_f, look_gen_f = look_imp[np.isfinite(look_imp)], look_gen[np.isfinite(look_gen)]
    look_t = float(np.quantile(look_imp_f, lookalike_quantile))
    look_interval = bootstrap_interval(
        _by_member(look_imp, mem), lambda s: float(np.quantile(s[np.isfinite(s)], lookalike_quantile))
    )
    look_gen_med = float(np.median(look_gen_f)) if look_gen_f.size else look_t + 0.3
    location, scale = gumbel_fit(own)
    calibration = Calibration(
        threshold=round(threshold, 4),
        target_fmr=target_fmr,
        impostor=_percentiles(observed),
        genuine=_percentiles(gen),
        n_impostor=int(observed.size),
        n_genuine=int(gen.size),
        anchors=resemblance_anchors(look_t, float(np.percentile(look_imp_f, 5)), look_gen_med),
        n_rejected=int(rejected_scores.size),
        histogram=histogram(gen, observed, lookalike=(look_gen_f, look_imp_f)),
        threshold_interval=interval,
        lookalike_threshold=round(look_t, 4),
        lookalike_quantile=lookalike_quantile,
        lookalike_interval=look_interval,
        lookalike=_percentiles(look_imp_f),
        member_norm={
            str(int(m)): [round(float(a), 6), round(float(b), 6)]
            for m, a, b in zip(norm.member_ids, mean, std, strict=True)
        },
        pooled=[round(norm.pooled_mean, 6), round(norm.pooled_std, 6)],
        crowd={"digest": crowd.digest, "people": crowd.n_people, "faces": len(crowd.embeddings)},
        tail={"location": round(location, 6), "scale": round(scale, 6)},
        n_suspects=len(screened.suspects),
    )
    return Calibrated(calibration, screened.suspects, crowd)


def _too_small(embeddings: FloatArray, members: IntArray, *, k: int, target_fmr: float) -> Calibrated:
    """One member (or none): no stranger to score, so the fallback threshold, and lookalike = same person."""
    gen = leave_one_out(embeddings, members, k=k).genuine if len(embeddings) else np.zeros(0, np.float32)
    gen_med = float(np.median(gen)) if gen.size else FALLBACK_THRESHOLD + 0.25
    calibration = Calibration(
        threshold=FALLBACK_THRESHOLD,
        target_fmr=target_fmr,
        impostor={},
        genuine=_percentiles(gen),
        n_impostor=0,
        n_genuine=int(gen.size),
        anchors=resemblance_anchors(FALLBACK_THRESHOLD, FALLBACK_THRESHOLD - 0.15, gen_med),
        histogram=histogram(gen, np.zeros(0, np.float32)),
        crowd={"digest": "", "people": 0, "faces": 0},
    )
    return Calibrated(calibration, [], EMPTY)
