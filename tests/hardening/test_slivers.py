"""Pictures far thinner than tall (or the reverse) decode fine; detection must answer "no face", not crash.

Found by the malformed corpus: a 1 x 30000 PNG made OpenCV assert inside SCRFD's letterbox (a 500).
"""

from __future__ import annotations

import pytest
from malformed import big_flat_png

from lookalike.pipeline.pipeline import Pipeline


@pytest.mark.parametrize(
    ("width", "height"), [(1, 30_000), (30_000, 1), (700, 1), (128, 1), (129, 1), (1281, 10), (20_000, 157)]
)
def test_slivers_have_no_face(pipeline: Pipeline, width: int, height: int) -> None:
    image, faces = pipeline.read(big_flat_png(width, height))
    assert image.original_size == (width, height)
    assert faces == []
