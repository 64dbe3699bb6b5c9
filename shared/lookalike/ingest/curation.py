"""Automatic curation of a member's scraped photos: keep the member, drop other people, flag the doubtful.

Scraped sets are dirty: a third or more of the photos show someone else (another member, a co-star, a fan),
some are group photos, some faces are too small, blurred or in profile. Nothing says which face is the member,
so the member is taken to be the dominant mutually-consistent cluster of faces across the candidate photos:

1. Only usable faces (pipeline.quality) take part. A face's support is the number of OTHER photos holding a
   face at least `pair` similar to it; the best-supported face seeds the cluster, its neighbours (one face per
   photo) form the first core, and the core is refined until stable: the photos whose best face is at least
   `keep` similar to the core's centroid, scored leave-one-out (a photo never vouches for itself), and not
   nearly as close to another member (`others`: a look-alike member must not drag the centroid over).
2. That identity is adopted only when the core holds `min_consensus` photos, no second cluster is more than
   1/`dominance` of its size (two people recur: nothing says which is the member), and it fits `min_share` of
   the photos showing a usable face (photos that clearly show another member excepted). Otherwise every photo
   with a usable face is flagged: a set that is mostly someone else must not silently become their gallery.
3. Per photo, the face closest to the leave-one-out centroid is the candidate: kept when clearly the member,
   rejected when clearly not (wrong_person, other_member:<slug>), flagged when doubtful (between the
   thresholds, nearly as close to another member's centroid, or a second face in the photo nearly as close).
   Photos without a usable face are rejected for their quality (no_usable_face, too_small, blurred,
   not_frontal), whatever the consensus.

The defaults (BUFFALO_S) were measured with buffalo_s on /work/shared/data/faces; `bench/curation_eval.py
--derive` reprints the data. Similarities depend on the recognition model: another model pack needs its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from lookalike.pipeline.pipeline import Pipeline
from lookalike.pipeline.quality import FaceQuality, assess_in_image
from lookalike.pipeline.types import FloatArray

Status = Literal["ok", "flagged", "rejected"]
# Seeds tried before a candidate set is declared to have no consensus.
_SEED_TRIES = 3


@dataclass(frozen=True)
class CandidateFace:
    face_index: int  # position in Pipeline.analyze's list for the photo
    embedding: FloatArray  # unit length
    quality: FaceQuality
    det_score: float


@dataclass(frozen=True)
class CandidatePhoto:
    key: str
    faces: tuple[CandidateFace, ...]


@dataclass(frozen=True)
class Decision:
    key: str
    status: Status
    face_index: int | None  # the face the decision is about (the member's, when kept)
    reason: str
    score: float | None  # that face's similarity to the member's leave-one-out centroid


@dataclass(frozen=True)
class Thresholds:
    """Cosine similarities for one recognition model. Defaults: buffalo_s (w600k_mbf), measured on the
    reference faces: east_asian/ 250 photos of 21 people (the hard case: East Asian strangers score much higher
    than Western ones) and gallery/ 609 photos of 69 people.

    - keep 0.40: a photo vs another person's centroid reaches it 0.32% of the time on east_asian (99.7th
      percentile; gallery 0.007%); a photo vs its own leave-one-out centroid falls below it 1.2% / 0.33%.
    - reject 0.25: below every own-centroid similarity of both sets (minimum 0.30 / 0.38), and still below
      99.7% of them with the small cores of a curation set (centroids of 3, 5 or 8 photos: 0.24% on
      east_asian, 0.30% on gallery). 9.6% of east_asian strangers score above it: they are flagged.
    - pair 0.30: face vs face, the 99th percentile of different-person pairs on east_asian (gallery 0.17);
      93% / 98% of same-person pairs reach it, so a member's face is supported by nearly all their photos.
    - margin 0.05: own centroid minus the closest other person's, 0.5th percentile on east_asian (gallery 0.21).
    """

    keep: float = 0.40
    reject: float = 0.25
    pair: float = 0.30
    margin: float = 0.05
    # Fewer photos than this cannot outvote one wrong look-alike: flag instead of deciding.
    min_consensus: int = 3
    # The identity must fit at least this share of the photos showing a usable face.
    min_share: float = 0.5
    # The member's cluster must hold this many times as many photos as any other recurring person's. Below
    # that, a wrong person with more photos than the member could be adopted; above, the review load grows.
    dominance: float = 2.0


BUFFALO_S = Thresholds()


@dataclass(frozen=True)
class Identity:
    """The member as found in a candidate set: the core photos and the centroid of their faces."""

    centroid: FloatArray  # unit length
    core: Mapping[int, tuple[int, FloatArray]]  # photo position -> (face index, embedding) of the member's face
    # Share of the photos with a usable face (other members' photos aside) that fit it: best face >= reject.
    share: float

    def centroid_without(self, photo: int) -> FloatArray:
        """The centroid of the core without `photo`'s face: nothing vouches for itself."""
        own = self.core.get(photo)
        if own is None:
            return self.centroid
        total = np.sum([e for _, e in self.core.values()], axis=0) - own[1]
        return _unit(total)


@dataclass(frozen=True)
class Consensus:
    identity: Identity | None
    reason: str  # why there is none: too_few_photos, no_consensus, two_identities, no_majority


def _unit(v: FloatArray) -> FloatArray:
    n = float(np.linalg.norm(v))
    return np.asarray(v / n if n > 0 else v, dtype=np.float32)


def _centroid(v: FloatArray) -> FloatArray:
    """A member given as one embedding/centroid (d,) or as several embeddings (n, d)."""
    arr = np.asarray(v, dtype=np.float32)
    return _unit(arr.mean(axis=0) if arr.ndim == 2 else arr)


def _usable_faces(photos: Sequence[CandidatePhoto]) -> tuple[FloatArray, list[int], list[int]]:
    """Embeddings of the usable faces, the position of each one's photo and its face index."""
    rows = [(p, f) for p, photo in enumerate(photos) for f in photo.faces if f.quality.usable]
    if not rows:
        return np.zeros((0, 0), dtype=np.float32), [], []
    emb = np.stack([_unit(f.embedding) for _, f in rows])
    return emb, [p for p, _ in rows], [f.face_index for _, f in rows]


def find_identity(
    photos: Sequence[CandidatePhoto],
    *,
    others: Mapping[str, FloatArray] = {},
    thresholds: Thresholds = BUFFALO_S,
) -> Consensus:
    """The member's identity in a candidate set, or why there is none (see the module's steps 1 and 2)."""
    t = thresholds
    negatives = {slug: _centroid(v) for slug, v in others.items()}
    emb, owner, face_index = _usable_faces(photos)
    photo_ids = sorted(set(owner))
    if len(photo_ids) < t.min_consensus:
        return Consensus(None, "too_few_photos")
    faces = _Faces(emb, np.asarray(owner), negatives)
    core = faces.cluster(np.arange(len(emb)), t)
    if len(core) < t.min_consensus:
        return Consensus(None, "no_consensus")
    # A second consistent cluster not much smaller than the first: two people recur (say 5 photos of a
    # co-star and 3 of the member), and nothing in the photos says which one is the member.
    rest = np.setdiff1d(np.arange(len(emb)), list(core.values()))
    second = faces.cluster(rest, t)
    if len(second) >= t.min_consensus and t.dominance * len(second) > len(core):
        return Consensus(None, "two_identities")
    total = emb[list(core.values())].sum(axis=0)
    centroid = _unit(total)
    # The identity must fit most photos. Photos that clearly show another member are explained already and
    # do not count against it (`others` makes a set of mostly other members curable).
    fits = elsewhere = 0
    for p in photo_ids:
        idx = faces.of_photo[p]
        scores = emb[idx] @ (_unit(total - emb[core[p]]) if p in core else centroid)
        if float(scores.max()) >= t.reject:
            fits += 1
        elif bool(np.any((faces.closest_other[idx] >= t.keep) & (faces.closest_other[idx] >= scores + t.margin))):
            elsewhere += 1
    share = fits / max(1, len(photo_ids) - elsewhere)
    if share < t.min_share:
        return Consensus(None, "no_majority")
    identity = Identity(
        centroid=centroid,
        core={p: (face_index[i], emb[i]) for p, i in core.items()},
        share=round(share, 4),
    )
    return Consensus(identity, "")


class _Faces:
    """The usable faces of a candidate set, for growing clusters."""

    def __init__(self, emb: FloatArray, owner: npt.NDArray[np.int64], negatives: Mapping[str, FloatArray]) -> None:
        self.emb, self.owner = emb, owner
        self.sims = emb @ emb.T
        self.of_photo = {int(p): np.flatnonzero(owner == p) for p in np.unique(owner)}
        # Each face's similarity to the closest other member: a look-alike member (same group, same age) can
        # pass `keep` and would drag the centroid towards them, so a face nearly as close to another member
        # stays out of the core.
        self.closest_other = (
            (emb @ np.stack(list(negatives.values())).T).max(axis=1) if negatives else np.full(len(emb), -1.0)
        )

    def cluster(self, candidates: npt.NDArray[np.int64], t: Thresholds) -> dict[int, int]:
        """The dominant cluster among the `candidates` faces: photo -> face, at most one face per photo."""
        if len(candidates) == 0:
            return {}
        owner, sims = self.owner, self.sims
        photos = sorted({int(owner[i]) for i in candidates})
        by_photo = {p: candidates[owner[candidates] == p] for p in photos}
        # best[i, k]: face i's closest face in photo k (never its own photo): one vote per photo, so a group
        # photo or a face repeated in a collage cannot vote twice.
        best = np.full((len(candidates), len(photos)), -1.0, dtype=np.float32)
        for k, p in enumerate(photos):
            best[:, k] = sims[np.ix_(candidates, by_photo[p])].max(axis=1)
            best[owner[candidates] == p, k] = -1.0
        votes = best >= t.pair
        support = votes.sum(axis=1)
        strength = np.where(votes, best, 0.0).sum(axis=1)
        # Seeds by support, faces that clearly show another member last; a seed whose cluster falls apart
        # (its neighbours were another member's photos) gives way to the next one outside its neighbourhood.
        elsewhere = self.closest_other[candidates] >= t.keep
        tried: set[int] = set()
        attempts = 0
        for pos in np.lexsort((strength, support, ~elsewhere))[::-1]:
            seed = int(candidates[pos])
            if seed in tried:
                continue
            core = self._grow(seed, photos, by_photo, t)
            if len(core) >= t.min_consensus:
                return core
            attempts += 1
            if attempts >= _SEED_TRIES:
                break
            # Its neighbours would grow the same failed cluster.
            tried.add(seed)
            tried.update(int(j) for j in candidates[sims[seed, candidates] >= t.pair])
        return {}

    def _grow(
        self, seed: int, photos: list[int], by_photo: Mapping[int, npt.NDArray[np.int64]], t: Thresholds
    ) -> dict[int, int]:
        owner, sims = self.owner, self.sims
        core: dict[int, int] = {int(owner[seed]): seed}
        for p in photos:
            j = int(by_photo[p][np.argmax(sims[seed, by_photo[p]])])
            if p != owner[seed] and sims[seed, j] >= t.pair:
                core[p] = j
        # Refine: the core is what its own (leave-one-out) centroid accepts, until that no longer changes.
        for _ in range(20):
            total = self.emb[list(core.values())].sum(axis=0)
            refined: dict[int, int] = {}
            for p in photos:
                faces = by_photo[p]
                centre = _unit(total - self.emb[core[p]]) if p in core else _unit(total)
                scores = self.emb[faces] @ centre
                j = int(np.argmax(scores))
                if scores[j] >= t.keep and self.closest_other[faces[j]] <= scores[j] - t.margin:
                    refined[p] = int(faces[j])
            converged = refined == core
            core = refined
            if converged or len(core) < t.min_consensus:
                break
        return core


def curate_member(
    photos: Sequence[CandidatePhoto],
    *,
    others: Mapping[str, FloatArray] = {},
    thresholds: Thresholds = BUFFALO_S,
) -> list[Decision]:
    """One decision per photo, in order. `others`: the other members of the group (centroids, or each member's
    embeddings as an (n, d) array), the likeliest wrong people."""
    negatives = {slug: _centroid(v) for slug, v in others.items()}
    consensus = find_identity(photos, others=negatives, thresholds=thresholds)
    return [_decide(p, photo, consensus, negatives, thresholds) for p, photo in enumerate(photos)]


def curate_group(
    members: Mapping[str, Sequence[CandidatePhoto]],
    *,
    known: Mapping[str, FloatArray] = {},
    thresholds: Thresholds = BUFFALO_S,
    passes: int = 3,
) -> dict[str, list[Decision]]:
    """Curate every member of a group, each against the others' centroids (and `known` members').

    The centroids come from the members' own dirty sets, so they are refined in turns: first each member alone,
    then each against the others' previous centroids (a look-alike member's photos no longer pull a core
    towards them), until nothing changes. Two members whose sets show the same person end up flagged (each
    set's photos look like the other member): which one the photos show is for a human to say."""
    fixed = {slug: _centroid(v) for slug, v in known.items()}
    centroids: dict[str, FloatArray] = dict(fixed)
    cores: dict[str, Mapping[int, tuple[int, FloatArray]] | None] = {}
    for _ in range(passes):
        found = {
            slug: find_identity(
                photos, others={s: c for s, c in centroids.items() if s != slug}, thresholds=thresholds
            ).identity
            for slug, photos in members.items()
        }
        now = {slug: None if identity is None else identity.core for slug, identity in found.items()}
        centroids = dict(fixed)
        centroids.update({slug: identity.centroid for slug, identity in found.items() if identity is not None})
        if _same_cores(now, cores):
            break
        cores = now
    return {
        slug: curate_member(photos, others={s: c for s, c in centroids.items() if s != slug}, thresholds=thresholds)
        for slug, photos in members.items()
    }


def _same_cores(
    a: Mapping[str, Mapping[int, tuple[int, FloatArray]] | None],
    b: Mapping[str, Mapping[int, tuple[int, FloatArray]] | None],
) -> bool:
    def faces(core: Mapping[int, tuple[int, FloatArray]] | None) -> dict[int, int] | None:
        return None if core is None else {p: f for p, (f, _) in core.items()}

    return a.keys() == b.keys() and all(faces(a[k]) == faces(b[k]) for k in a)


def _closest_other(embedding: FloatArray, negatives: Mapping[str, FloatArray]) -> tuple[str, float]:
    if not negatives:
        return "", -1.0
    slug = max(negatives, key=lambda s: float(embedding @ negatives[s]))
    return slug, float(embedding @ negatives[slug])


def _decide(
    position: int,
    photo: CandidatePhoto,
    consensus: Consensus,
    negatives: Mapping[str, FloatArray],
    t: Thresholds,
) -> Decision:
    key = photo.key
    if not photo.faces:
        return Decision(key, "rejected", None, "no_usable_face", None)
    identity = consensus.identity
    centre = identity.centroid_without(position) if identity is not None else None
    usable = [f for f in photo.faces if f.quality.usable]
    unusable = [f for f in photo.faces if not f.quality.usable]

    def score(face: CandidateFace) -> float:
        return float(_unit(face.embedding) @ centre) if centre is not None else 0.0

    if not usable:
        # Name the flaw of the face that matters: the one most like the member, or the largest.
        face = max(unusable, key=score if centre is not None else lambda f: f.quality.size_px)
        return Decision(key, "rejected", face.face_index, face.quality.reasons[0], _round(score(face), centre))
    if centre is None:
        # No identity to judge by: flag, but say so when a face is clearly another member (a helpful hint
        # for the reviewer, not a verdict: that member's centroid may come from a set as dirty as this one).
        slug, other = max((_closest_other(_unit(f.embedding), negatives) for f in usable), key=lambda h: h[1])
        if other >= t.keep:
            # No face index: the face is another member's, the member's own (if any) is for the reviewer to pick.
            return Decision(key, "flagged", None, f"other_member:{slug}", None)
        return Decision(key, "flagged", None, consensus.reason, None)
    ranked = sorted(usable, key=score, reverse=True)
    best, s = ranked[0], score(ranked[0])
    second = score(ranked[1]) if len(ranked) > 1 else None
    slug, other = _closest_other(_unit(best.embedding), negatives)
    if s < t.keep:
        # The member may be in the photo, but only as a face too poor to keep (a small face in a group photo).
        hidden = [f for f in unusable if score(f) >= t.keep]
        if hidden:
            face = max(hidden, key=score)
            return Decision(key, "rejected", face.face_index, face.quality.reasons[0], round(score(face), 4))
    if other >= t.keep and other >= s + t.margin:
        return Decision(key, "rejected", best.face_index, f"other_member:{slug}", round(s, 4))
    if s >= t.keep:
        if other > s - t.margin:
            return Decision(key, "flagged", best.face_index, f"near_other_member:{slug}", round(s, 4))
        if second is not None and (second >= t.keep or (second >= t.reject and s - second < t.margin)):
            return Decision(key, "flagged", best.face_index, "ambiguous_faces", round(s, 4))
        return Decision(key, "ok", best.face_index, "member", round(s, 4))
    if s >= t.reject:
        return Decision(key, "flagged", best.face_index, "doubtful", round(s, 4))
    return Decision(key, "rejected", best.face_index, "wrong_person", round(s, 4))


def _round(value: float, centre: FloatArray | None) -> float | None:
    return round(value, 4) if centre is not None else None


def candidate_photo(pipeline: Pipeline, key: str, data: bytes) -> CandidatePhoto:
    """Detect, embed and assess every face of a photo (raises lookalike.errors.ImageError for bad bytes)."""
    image, faces = pipeline.read(data)
    return CandidatePhoto(
        key=key,
        faces=tuple(
            CandidateFace(
                face_index=i,
                embedding=f.embedding,
                quality=assess_in_image(image, f.detection),
                det_score=f.detection.score,
            )
            for i, f in enumerate(faces)
        ),
    )
