"""Why a face resembles a member: occlusion sensitivity of the similarity, on the ONNX embedder itself.

A grey patch slides over the aligned face; each position is embedded again and the drop of the similarity to the
member is credited to the pixels it hid. No gradients are needed (the embedder is an ONNX graph, not a torch
module), and what the map shows is by construction what the model does: hiding the hottest cells lowers the
similarity more than hiding the coldest (tests/pipeline/test_explain.py checks that on real faces).

The target is the member's score itself. A member scores the mean similarity of their best k photos; with
those photos held fixed, that mean is the dot product with their mean vector, so one vector per face suffices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lookalike.pipeline.aligner import SIZE
from lookalike.pipeline.embedder import Embedder
from lookalike.pipeline.types import FloatArray

# 16 px patches every 8 px: 13 x 13 = 169 embeddings per face, and a 14 x 14 grid of 8 px cells, each covered by
# up to four patches. Smaller patches barely move an ArcFace embedding; larger ones blur eyes into brows.
PATCH = 16
STRIDE = 8
CELL = 8
GRID = SIZE // CELL
# Mid-grey: 0 after the embedder's (x - 127.5) / 127.5 normalisation, i.e. "no signal".
FILL = 128

UInt8Image = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Heatmap:
    similarity: float  # of the unoccluded face to the target
    grid: FloatArray  # (GRID, GRID): mean similarity drop when the cell is hidden; > 0 raises resemblance


def occluded(crop: UInt8Image, boxes: Sequence[tuple[int, int, int, int]]) -> UInt8Image:
    """A copy of `crop` with each (y, x, height, width) box filled grey."""
    out = crop.copy()
    for y, x, h, w in boxes:
        out[y : y + h, x : x + w] = FILL
    return out


def cell_boxes(cells: Sequence[tuple[int, int]]) -> list[tuple[int, int, int, int]]:
    """Pixel boxes of grid cells given as (row, column)."""
    return [(r * CELL, c * CELL, CELL, CELL) for r, c in cells]


def occlusion_heatmap(embedder: Embedder, crop: UInt8Image, target: FloatArray) -> Heatmap:
    """Sensitivity of `crop`'s similarity to `target` (a member's mean vector) to hiding each region."""
    starts = range(0, SIZE - PATCH + 1, STRIDE)
    positions = [(y, x) for y in starts for x in starts]
    variants = [crop] + [occluded(crop, [(y, x, PATCH, PATCH)]) for y, x in positions]
    sims = embedder.embed(variants) @ target
    base = float(sims[0])
    drops = base - sims[1:]
    total = np.zeros((GRID, GRID), np.float64)
    count = np.zeros((GRID, GRID), np.float64)
    span = PATCH // CELL
    for (y, x), drop in zip(positions, drops, strict=True):
        r, c = y // CELL, x // CELL
        total[r : r + span, c : c + span] += drop
        count[r : r + span, c : c + span] += 1
    return Heatmap(similarity=base, grid=(total / np.maximum(count, 1)).astype(np.float32))


def ranked_cells(grid: FloatArray) -> list[tuple[int, int]]:
    """Grid cells, hottest first."""
    order = np.argsort(-grid, axis=None, kind="stable")
    return [(int(i) // grid.shape[1], int(i) % grid.shape[1]) for i in order]
