"""Animations decode their first frame only, in time that does not grow with the frame count.

2,000 frames of 256 x 256: walking through them would cost seconds (about a millisecond a frame to decode);
reading the first one costs about a millisecond.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from malformed import animation

from lookalike.errors import UnsupportedImageType
from lookalike.imaging import decode_image

FRAMES = 2000
SIDE = 256
FIRST_FRAME = (0, 0, 0)  # animation() colours frame i with (37 i, 91 i, 13 i) mod 256


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_long_animation_gives_its_first_frame_quickly(fmt: str) -> None:
    data = animation(fmt, FRAMES, SIDE)
    started = time.perf_counter()
    decoded = decode_image(data, max_pixels=40_000_000)
    seconds = time.perf_counter() - started
    assert decoded.rgb.shape == (SIDE, SIDE, 3)
    assert np.abs(decoded.rgb.astype(int) - FIRST_FRAME).max() <= 2
    assert seconds < 0.5, f"{seconds:.2f} s for the first of {FRAMES} frames"


def test_long_gif_is_refused_by_type_at_once() -> None:
    data = animation("GIF", FRAMES, 16)
    started = time.perf_counter()
    with pytest.raises(UnsupportedImageType):
        decode_image(data, max_pixels=40_000_000)
    assert time.perf_counter() - started < 0.1
