"""A loaded gallery index: FAISS inner product over unit embeddings, with the labels and calibration of its
version. Immutable once built, so worker threads share it without locks and a swap is one assignment."""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

from lookalike.index.calibration import Calibration
from lookalike.index.scoring import IntArray, member_scores
from lookalike.pipeline.types import FloatArray

# Exact search over every photo up to this size; beyond it only the nearest photos are aggregated per member.
EXHAUSTIVE_LIMIT = 20_000
NEIGHBOURS = 1024


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
    ) -> GalleryIndex:
        index = faiss.IndexFlatIP(embeddings.shape[1])
        if len(embeddings):
            index.add(np.ascontiguousarray(embeddings, dtype=np.float32))
        return cls(version_id, group, model_pack, index, member_ids, photo_ids, members, calibration, member_top_k)

    @property
    def threshold(self) -> float:
        return self.calibration.threshold

    def member_target(self, query: FloatArray, member_id: int) -> FloatArray:
        """The mean vector of the member's `member_top_k` photos closest to `query`: its dot product with the
        query is the member's score (scoring.member_scores), which explanations decompose."""
        positions = np.flatnonzero(self.member_ids == member_id)
        vectors = np.stack([self.index.reconstruct(int(p)) for p in positions]).astype(np.float32)
        best = np.argsort(-(vectors @ query), kind="stable")[: self.member_top_k]
        target: FloatArray = vectors[best].mean(axis=0)
        return target

    def rank(self, queries: FloatArray, *, top: int) -> list[list[MemberScore]]:
        """The `top` members each query resembles most, best first."""
        n = self.index.ntotal
        if n == 0 or len(queries) == 0:
            return [[] for _ in range(len(queries))]
        k = n if n <= EXHAUSTIVE_LIMIT else NEIGHBOURS
        sims, pos = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        results: list[list[MemberScore]] = []
        for row_sims, row_pos in zip(sims, pos, strict=True):
            valid = row_pos >= 0
            ids, scores, best = member_scores(row_sims[valid], self.member_ids[row_pos[valid]], k=self.member_top_k)
            positions = row_pos[valid][best]
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
