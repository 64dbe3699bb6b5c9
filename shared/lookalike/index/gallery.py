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
search nominates."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import faiss
import numpy as np

from lookalike.index import ann
from lookalike.index.calibration import Calibration
from lookalike.index.scoring import IntArray, member_scores
from lookalike.pipeline.types import FloatArray

# Exact search over every photo up to this size; beyond it the nearest photos nominate the members to score.
EXHAUSTIVE_LIMIT = 20_000
NEIGHBOURS = 1024  # nearest photos searched beyond EXHAUSTIVE_LIMIT with exact (flat) search
RESCORE_BATCH = 32  # members re-scored together before the pruning bound is updated (flat search)


@dataclass(frozen=True)
class MemberInfo:
    id: int
    slug: str
    name: str
    group: str


@dataclass(frozen=True)
class MemberScore:
    member: MemberInfo
    similarity: float
    resemblance: float
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
        approx_from: int = ann.APPROX_FROM,
        approx: ann.Kind = ann.APPROX_KIND,
    ) -> GalleryIndex:
        """`approx_from`: the gallery size from which an approximate index of kind `approx` is built (index.ann)."""
        index = ann.build(embeddings, approx_from=approx_from, approx=approx)
        return cls(version_id, group, model_pack, index, member_ids, photo_ids, members, calibration, member_top_k)

    @property
    def threshold(self) -> float:
        return self.calibration.threshold

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
        """The `top` members each query resembles most, best first."""
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
        results: list[list[MemberScore]] = []
        for query, row_sims, row_pos in zip(queries, sims, pos, strict=True):
            valid = row_pos >= 0
            if complete:
                ids, scores, best = member_scores(row_sims[valid], self.member_ids[row_pos[valid]], k=self.member_top_k)
                positions = row_pos[valid][best]
            else:
                ids, scores, positions = self._rank_nominated(query, row_sims[valid], row_pos[valid], k, top)
            results.append(
                [
                    MemberScore(
                        member=self.members[int(m)],
                        similarity=round(float(s), 4),
                        resemblance=self.calibration.resemblance(float(s)),
                        closest_photo_id=int(self.photo_ids[p]),
                    )
                    for m, s, p in zip(ids[:top], scores[:top], positions[:top], strict=True)
                ]
            )
        return results

    def _rank_nominated(
        self, query: FloatArray, sims: FloatArray, pos: IntArray, k: int, top: int
    ) -> tuple[IntArray, FloatArray, IntArray]:
        """(member ids, exact scores, position of each one's best photo), best first, of at least the `top` best
        members, from one query's `k` nearest faces (see the module docstring)."""
        n = self.index.ntotal
        while True:
            ranked = self._rescore(query, sims, pos, top)
            floor = float(sims[-1]) if len(sims) else -np.inf
            enough = len(ranked[0]) >= min(top, len(self.members))
            if k >= n or (enough and float(ranked[1][min(top, len(ranked[1])) - 1]) >= floor):
                return ranked
            k = min(n, 4 * k)
            s, p = ann.search(self.index, query[None, :], k)
            sims, pos = s[0][p[0] >= 0], p[0][p[0] >= 0]

    def _rescore(
        self, query: FloatArray, sims: FloatArray, pos: IntArray, top: int
    ) -> tuple[IntArray, FloatArray, IntArray]:
        kk = self.member_top_k
        ids, partial, best = member_scores(sims, self.member_ids[pos], k=kk)
        if len(ids) == 0:
            return ids, partial, best
        if not ann.exhaustive(self.index):
            # Approximate search may miss any photo, so neither a retrieved top-k nor the bound can be trusted:
            # every nominated member is re-scored.
            positions = self._positions_of(ids)
            e_ids, e_scores, e_best = member_scores(
                ann.vectors(self.index, positions) @ query, self.member_ids[positions], k=kk
            )
            return e_ids, e_scores, positions[e_best]
        all_ids, _, all_counts, _ = self._member_rows
        photos = all_counts[np.searchsorted(all_ids, ids)]
        retrieved, retrieved_counts = np.unique(self.member_ids[pos], return_counts=True)
        found = retrieved_counts[np.searchsorted(retrieved, ids)]
        need = np.minimum(kk, photos)
        used = np.minimum(kk, found)
        complete = used >= need
        floor = float(sims[-1])
        bound = np.where(complete, partial, (partial * used + (need - used) * floor) / need)
        known_ids, known_scores, known_pos = [ids[complete]], [partial[complete]], [pos[best[complete]]]
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
            c_ids, c_scores, c_best = member_scores(exact, self.member_ids[positions], k=kk)
            known_ids.append(c_ids)
            known_scores.append(c_scores)
            known_pos.append(positions[c_best])
        all_known_ids = np.concatenate(known_ids)
        all_scores = np.concatenate(known_scores).astype(np.float32)
        all_pos = np.concatenate(known_pos)
        ranked = np.argsort(-all_scores, kind="stable")
        return all_known_ids[ranked], all_scores[ranked], all_pos[ranked]
