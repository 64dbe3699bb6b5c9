"""A loaded gallery index: FAISS inner product over unit embeddings, with the labels and calibration of its
version. Immutable once built, so worker threads share it without locks and a swap is one assignment.

Up to EXHAUSTIVE_LIMIT faces (flat index) every face is scored. Beyond it, and always on an approximate index
(index.ann), only the query's nearest faces are searched, and they only nominate members. A member's score is the
mean of their best `member_top_k` photos: aggregating only the retrieved photos over-scores a member with one
photo among the nearest and the others far below (on realistic galleries most top-3 rankings came out wrong that
way, bench/index_search.py "truncated"), so nominated members are re-scored exactly over all of their photos:

* exact (flat) search: the nominated members that could still reach the top, best upper bound first (retrieved
  similarities, the missing ones counted at the last retrieved similarity), until no bound beats the `top`-th
  exact score;
* approximate search: every nominated member (a missed photo would make the bound wrong).

A member none of whose photos was retrieved scores at most the last retrieved similarity; when the `top`-th exact
score is below it, the search is widened (4 times the neighbours, up to every face). On a flat index the ranking
is then the exhaustive one; on an approximate index (PQ scan + re-rank, HNSW) it is exact for every member the
search nominates.

Members are ranked by their score (scoring.MemberNorm): each member's similarity on the gallery's pooled scale,
an increasing function of it, so bounds on similarities stay bounds on scores. Every face is also scored against
the version's reference crowd (index/crowd.py); the difference is its lookalike score, which the verdict and the
resemblance % are read from."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import faiss
import numpy as np

from lookalike.index import ann
from lookalike.index.calibration import Calibration
from lookalike.index.crowd import EMPTY, Crowd
from lookalike.index.scoring import IntArray, MemberNorm, member_scores
from lookalike.pipeline.types import FloatArray

# Exact search over every photo up to this size; beyond it the nearest photos nominate the members to score.
EXHAUSTIVE_LIMIT = 20_000
NEIGHBOURS = 1024  # nearest photos searched beyond EXHAUSTIVE_LIMIT with exact (flat) search
RESCORE_BATCH = 32  # members re-scored together before the pruning bound is updated (flat search)


# (member ids, similarities, scores, position of each member's closest face), best score first.
Ranked = tuple[IntArray, FloatArray, FloatArray, IntArray]


@dataclass(frozen=True)
class MemberInfo:
    id: int
    slug: str
    name: str
    group: str


@dataclass(frozen=True)
class MemberScore:
    member: MemberInfo
    similarity: float  # cosine: mean of the member's best member_top_k photos
    score: float  # the similarity on the gallery's pooled scale (scoring.MemberNorm): what members are ranked by
    lookalike: float  # score minus the face's score against its closest crowd person (index/crowd.py)
    resemblance: float  # calibrated %, a monotone map of `lookalike`
    closest_photo_id: int


@dataclass(frozen=True)
class GalleryIndex:
    version_id: int
    group: str
    model_pack: str
    index: faiss.Index
    member_ids: IntArray  # per indexed face
    photo_ids: IntArray  # per indexed face
    members: dict[int, MemberInfo]
    calibration: Calibration
    member_top_k: int
    crowd: Crowd = EMPTY

    @classmethod
    def build(
        cls,
        *,
        version_id: int,
        group: str,
        model_pack: str,
        embeddings: FloatArray,
        member_ids: IntArray,
        photo_ids: IntArray,
        members: dict[int, MemberInfo],
        calibration: Calibration,
        member_top_k: int,
        crowd: Crowd = EMPTY,
        approx_from: int = ann.APPROX_FROM,
        approx: ann.Kind = ann.APPROX_KIND,
    ) -> GalleryIndex:
        """`approx_from`: the gallery size from which an approximate index of kind `approx` is built (index.ann)."""
        index = ann.build(embeddings, approx_from=approx_from, approx=approx)
        return cls(
            version_id, group, model_pack, index, member_ids, photo_ids, members, calibration, member_top_k, crowd
        )

    @property
    def threshold(self) -> float:
        return self.calibration.threshold

    @cached_property
    def norm(self) -> MemberNorm:
        return self.calibration.norm()

    @cached_property
    def _member_rows(self) -> tuple[IntArray, IntArray, IntArray, IntArray]:
        """(member ids sorted, start of each in `order`, photo count of each, face positions grouped by member)."""
        order = np.argsort(self.member_ids, kind="stable")
        grouped = self.member_ids[order]
        starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]]) if len(grouped) else np.zeros(0, np.int64)
        counts = np.diff(np.r_[starts, len(grouped)])
        return grouped[starts], starts.astype(np.int64), counts.astype(np.int64), order.astype(np.int64)

    def _positions_of(self, member_ids: IntArray) -> IntArray:
        ids, starts, counts, order = self._member_rows
        at = np.searchsorted(ids, member_ids)
        if len(member_ids) == 0:
            return np.zeros(0, np.int64)
        return np.concatenate([order[starts[i] : starts[i] + counts[i]] for i in at])

    def member_target(self, query: FloatArray, member_id: int) -> FloatArray:
        """The mean vector of the member's `member_top_k` photos closest to `query`: its dot product with the
        query is the member's score (scoring.member_scores), which explanations decompose."""
        positions = np.sort(self._positions_of(np.asarray([member_id], np.int64)))
        vectors = ann.vectors(self.index, positions).astype(np.float32)
        best = np.argsort(-(vectors @ query), kind="stable")[: self.member_top_k]
        target: FloatArray = vectors[best].mean(axis=0)
        return target

    def rank(self, queries: FloatArray, *, top: int) -> list[list[MemberScore]]:
        """The `top` members each query resembles most (by score), best first."""
        n = self.index.ntotal
        if n == 0 or len(queries) == 0:
            return [[] for _ in range(len(queries))]
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        complete = ann.exhaustive(self.index) and n <= EXHAUSTIVE_LIMIT
        if complete:
            k = n
        elif ann.exhaustive(self.index):
            k = min(n, NEIGHBOURS)
        else:
            k = min(n, ann.neighbours(n, ann.kind_of(self.index)))
        sims, pos = ann.search(self.index, queries, k)
        crowd = self.crowd.best(queries, k=self.member_top_k)
        results: list[list[MemberScore]] = []
        for query, row_sims, row_pos, near in zip(queries, sims, pos, crowd, strict=True):
            valid = row_pos >= 0
            if complete:
                ids, raw, best = member_scores(row_sims[valid], self.member_ids[row_pos[valid]], k=self.member_top_k)
                ids, raw, scores, positions = self._ordered(ids, raw, row_pos[valid][best])
            else:
                ids, raw, scores, positions = self._rank_nominated(query, row_sims[valid], row_pos[valid], k, top)
            results.append(
                [
                    MemberScore(
                        member=self.members[int(m)],
                        similarity=round(float(r), 4),
                        score=round(float(s), 4),
                        lookalike=round(float(s) - float(near), 4),
                        resemblance=self.calibration.resemblance(float(s) - float(near)),
                        closest_photo_id=int(self.photo_ids[p]),
                    )
                    for m, r, s, p in zip(ids[:top], raw[:top], scores[:top], positions[:top], strict=True)
                ]
            )
        return results

    def _ordered(self, ids: IntArray, raw: FloatArray, positions: IntArray) -> Ranked:
        scores = self.norm.apply(ids, raw)
        order = np.argsort(-scores, kind="stable")
        return ids[order], raw[order], scores[order], positions[order]

    def _rank_nominated(self, query: FloatArray, sims: FloatArray, pos: IntArray, k: int, top: int) -> Ranked:
        """(member ids, exact similarities, scores, position of each one's best photo), best first, of at
        least the `top` best members, from one query's `k` nearest faces (see the module docstring)."""
        n = self.index.ntotal
        while True:
            ranked = self._rescore(query, sims, pos, top)
            # A member none of whose photos was retrieved has a similarity at most the last one's, hence a score at
            # most the highest any member's map gives that similarity.
            floor = self.norm.ceiling(float(sims[-1])) if len(sims) else -np.inf
            enough = len(ranked[0]) >= min(top, len(self.members))
            if k >= n or (enough and float(ranked[2][min(top, len(ranked[2])) - 1]) >= floor):
                return ranked
            k = min(n, 4 * k)
            s, p = ann.search(self.index, query[None, :], k)
            sims, pos = s[0][p[0] >= 0], p[0][p[0] >= 0]

    def _rescore(self, query: FloatArray, sims: FloatArray, pos: IntArray, top: int) -> Ranked:
        kk = self.member_top_k
        ids, partial, best = member_scores(sims, self.member_ids[pos], k=kk)
        if len(ids) == 0:
            return ids, partial, partial, best
        if not ann.exhaustive(self.index):
            # Approximate search may miss any photo, so neither a retrieved top-k nor the bound can be trusted:
            # every nominated member is re-scored.
            positions = self._positions_of(ids)
            e_ids, e_raw, e_best = member_scores(
                ann.vectors(self.index, positions) @ query, self.member_ids[positions], k=kk
            )
            return self._ordered(e_ids, e_raw, positions[e_best])
        all_ids, _, all_counts, _ = self._member_rows
        photos = all_counts[np.searchsorted(all_ids, ids)]
        retrieved, retrieved_counts = np.unique(self.member_ids[pos], return_counts=True)
        found = retrieved_counts[np.searchsorted(retrieved, ids)]
        need = np.minimum(kk, photos)
        used = np.minimum(kk, found)
        complete = used >= need
        floor = float(sims[-1])
        # Each member's map is increasing in the similarity, so it keeps an upper bound an upper bound.
        bound = self.norm.apply(ids, np.where(complete, partial, (partial * used + (need - used) * floor) / need))
        known_ids, known_raw, known_pos = [ids[complete]], [partial[complete]], [pos[best[complete]]]
        known_scores = [bound[complete]]
        pending = np.flatnonzero(~complete)
        pending = pending[np.argsort(-bound[pending], kind="stable")]
        for start in range(0, len(pending), RESCORE_BATCH):
            scores_so_far = np.concatenate(known_scores)
            tau = np.partition(scores_so_far, -top)[-top] if len(scores_so_far) >= top else -np.inf
            chunk = pending[start : start + RESCORE_BATCH]
            chunk = chunk[bound[chunk] > tau]
            if len(chunk) == 0:
                break
            positions = self._positions_of(ids[chunk])
            exact = ann.vectors(self.index, positions) @ query
            c_ids, c_raw, c_best = member_scores(exact, self.member_ids[positions], k=kk)
            known_ids.append(c_ids)
            known_raw.append(c_raw)
            known_scores.append(self.norm.apply(c_ids, c_raw))
            known_pos.append(positions[c_best])
        all_scores = np.concatenate(known_scores).astype(np.float32)
        ranked = np.argsort(-all_scores, kind="stable")
        return (
            np.concatenate(known_ids)[ranked],
            np.concatenate(known_raw).astype(np.float32)[ranked],
            all_scores[ranked],
            np.concatenate(known_pos)[ranked],
        )
