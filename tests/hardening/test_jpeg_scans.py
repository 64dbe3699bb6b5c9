"""A progressive JPEG with thousands of repeated scans is refused before libjpeg decodes any of them.

libjpeg walks the whole picture once per scan, however small the scan: a flat 12 MP progressive JPEG with its
last scan repeated 5,000 times is 200 KB and cost 31 s of CPU to decode, at any draft scale.
"""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image

from lookalike.errors import CorruptImage
from lookalike.imaging import decode_image

MAX_SCANS = 64  # lookalike.imaging._MAX_JPEG_SCANS


def with_repeated_last_scan(total_scans: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (2000, 1500), (120, 130, 140)).save(buf, "JPEG", progressive=True)
    data = buf.getvalue()
    scans = data.count(b"\xff\xda")
    last = data[data.rindex(b"\xff\xda") : -2]  # up to the EOI marker
    return data[:-2] + last * (total_scans - scans) + b"\xff\xd9"


def test_a_normal_progressive_jpeg_decodes() -> None:
    data = with_repeated_last_scan(10)
    assert data.count(b"\xff\xda") == 10
    assert decode_image(data, max_pixels=40_000_000).rgb.shape == (1500, 2000, 3)


def test_the_scan_cap_is_inclusive() -> None:
    assert decode_image(with_repeated_last_scan(MAX_SCANS), max_pixels=40_000_000).rgb.shape == (1500, 2000, 3)
    with pytest.raises(CorruptImage, match="65 scans"):
        decode_image(with_repeated_last_scan(MAX_SCANS + 1), max_pixels=40_000_000)


def test_thousands_of_scans_are_refused_at_once() -> None:
    data = with_repeated_last_scan(5000)
    assert len(data) < 300_000
    started = time.perf_counter()
    with pytest.raises(CorruptImage):
        decode_image(data, max_pixels=40_000_000, max_side=640)
    assert time.perf_counter() - started < 0.1
