"""The reference crowd: a fixed set of other people every face is also compared with.

"You look like member X" should mean more than "you are a young woman and so is X". A face's best similarity to
a member is therefore weighed against its best similarity to a crowd of 69 public figures of many ages, sexes and
origins (5 aligned face crops each, crowd/crowd.jpg, sources in crowd/crowd.tsv): a lookalike resembles the
member by a margin over the people it resembles anyway. The crowd's embeddings are computed once per model pack
and stored with every index version, so every worker scores against the same vectors.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from lookalike.index.scoring import IntArray, member_top_k
from lookalike.pipeline.types import FloatArray

CROWD_DIR = Path(__file__).resolve().parents[1] / "crowd"
MOSAIC = CROWD_DIR / "crowd.jpg"
TILES = CROWD_DIR / "crowd.tsv"
TILE = 112  # aligned ArcFace crops, laid out in rows of the mosaic

log = logging.getLogger(__name__)

EmbedCrops = Callable[[Sequence[npt.NDArray[np.uint8]]], FloatArray]


@dataclass(frozen=True)
class Crowd:
    """Crowd faces' embeddings and the person each shows (0..n-1)."""

    embeddings: FloatArray
    person_ids: IntArray
    digest: str  # of the bundled files: embeddings of another crowd never mix

    @property
    def n_people(self) -> int:
        return len(np.unique(self.person_ids))

    def best(self, queries: FloatArray, *, k: int) -> FloatArray:
        """Each query's score (the member rule: mean of the best k photos) against its closest crowd person; 0 for
        an empty crowd (a version built before crowds existed)."""
        if len(self.embeddings) == 0 or len(queries) == 0:
            return np.zeros(len(queries), np.float32)
        scores = member_top_k(queries @ self.embeddings.T, self.person_ids, k=k)
        best: FloatArray = scores.max(axis=1)
        return best

    def without(self, people: IntArray) -> Crowd:
        keep = ~np.isin(self.person_ids, people)
        return Crowd(self.embeddings[keep], self.person_ids[keep], self.digest)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, embeddings=self.embeddings, person_ids=self.person_ids, digest=np.array(self.digest))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes | None) -> Crowd:
        if not data:
            return EMPTY
        arrays = np.load(io.BytesIO(data))
        return cls(
            arrays["embeddings"].astype(np.float32), arrays["person_ids"].astype(np.int64), str(arrays["digest"])
        )


EMPTY = Crowd(np.zeros((0, 0), np.float32), np.zeros(0, np.int64), "")


@lru_cache(maxsize=1)
def crowd_crops() -> tuple[tuple[npt.NDArray[np.uint8], ...], IntArray, str]:
    """The bundled crops (RGB), the person of each, and the digest of the files."""
    rows = [line.split("\t") for line in TILES.read_text().splitlines()[1:] if line.strip()]
    names = sorted({r[1] for r in rows})
    person_ids = np.array([names.index(r[1]) for r in rows], np.int64)
    data = MOSAIC.read_bytes()
    mosaic = np.asarray(Image.open(MOSAIC).convert("RGB"))
    per_row = mosaic.shape[1] // TILE
    crops = tuple(
        np.ascontiguousarray(
            mosaic[(i // per_row) * TILE : (i // per_row + 1) * TILE, (i % per_row) * TILE :][:, :TILE]
        )
        for i in range(len(rows))
    )
    digest = hashlib.sha256(data + TILES.read_bytes()).hexdigest()
    return crops, person_ids, digest


def embed_crowd(embed: EmbedCrops) -> Crowd:
    crops, person_ids, digest = crowd_crops()
    return Crowd(embed(list(crops)), person_ids, digest)


def bundled_digest() -> str:
    return crowd_crops()[2]


def cached_crowd(cache_dir: Path, model_pack: str, embed: EmbedCrops | None) -> Crowd | None:
    """The crowd embedded earlier on this host by `model_pack` (cache_dir: a new database need not embed the 340
    crowd faces again), else embedded now and kept there; None without a cache entry and without `embed`."""
    digest = bundled_digest()
    cache = cache_dir / f"{Path(model_pack).name}-{digest[:16]}.npz"
    try:
        cached = Crowd.from_bytes(cache.read_bytes())
        if cached.digest == digest:
            return cached
    except (OSError, ValueError, KeyError):
        pass  # absent or unreadable: embedded again below
    if embed is None:
        return None
    crowd = embed_crowd(embed)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        tmp.write_bytes(crowd.to_bytes())
        tmp.replace(cache)
    except OSError as exc:  # a read-only home: every new database embeds the crowd once
        log.info("crowd cache %s not written (%s)", cache, exc)
    return crowd
