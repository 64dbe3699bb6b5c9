"""ArcFace embeddings of aligned faces, in batches, L2-normalised."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from lookalike.models.sessions import create_session
from lookalike.pipeline.types import FloatArray


class Embedder(Protocol):
    """What the pipeline needs of an embedder: a FaceEmbedder, or the batcher in front of one."""

    size: int
    dim: int

    def embed(self, faces: Sequence[npt.NDArray[np.uint8]]) -> FloatArray: ...


class FaceEmbedder:
    def __init__(self, model_path: Path, *, providers: Sequence[str], threads: int, batch: int = 32) -> None:
        self._session = create_session(model_path, providers=providers, threads=threads)
        inp = self._session.get_inputs()[0]
        self._input = inp.name
        self.size = int(inp.shape[2]) if isinstance(inp.shape[2], int) else 112
        self.batch = batch
        # A fixed batch dimension in the graph (some exports) forces one face per run.
        self._fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None
        self.dim = int(self._session.get_outputs()[0].shape[1])

    def embed(self, faces: Sequence[npt.NDArray[np.uint8]]) -> FloatArray:
        """RGB 112x112 crops -> (n, dim) unit vectors."""
        if not faces:
            return np.zeros((0, self.dim), dtype=np.float32)
        step = self._fixed_batch or self.batch
        out = [self._run(faces[i : i + step]) for i in range(0, len(faces), step)]
        emb = np.concatenate(out).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True) + 1e-12
        return emb

    def _run(self, faces: Sequence[npt.NDArray[np.uint8]]) -> FloatArray:
        blob = np.stack(faces).astype(np.float32).transpose(0, 3, 1, 2)
        blob = (blob - 127.5) / 127.5
        result = self._session.run(None, {self._input: np.ascontiguousarray(blob)})[0]
        return np.asarray(result, dtype=np.float32)
