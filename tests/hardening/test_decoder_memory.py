"""A picture just under the pixel cap that compresses to almost nothing costs its pixels once, not many times.

A 6000 x 6000 half-transparent PNG is 150 KB on the wire and 36 MP decoded. Converting and blending it in one
piece peaked at ~26 bytes per pixel (895 MiB); strip by strip it is the output array plus Pillow's own copy.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from malformed import png_chunk

from lookalike.imaging import decode_image

# Memory is read from /proc (VmRSS, VmHWM, clear_refs): Linux, as on CI.
pytestmark = pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
SIDE = 6000


def flat_png(colour_type: int, channels: int) -> bytes:
    row = b"\x00" + b"\x80" * (SIDE * channels)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(SIDE)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", SIDE, SIDE, 8, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def peak_mib_of(data: bytes) -> float:
    status = Path("/proc/self/status")

    def kib(key: str) -> int:
        line = next(line for line in status.read_text().splitlines() if line.startswith(key))
        return int(line.split()[1])

    Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) restarts from the current RSS
    before = kib("VmRSS")
    decoded = decode_image(data, max_pixels=40_000_000)
    assert decoded.rgb.shape == (SIDE, SIDE, 3)
    assert decoded.rgb[0, 0].tolist() in ([128, 128, 128], [191, 191, 191])
    return (kib("VmHWM") - before) / 1024


@pytest.mark.parametrize(("colour_type", "channels", "pillow_bytes"), [(6, 4, 4), (2, 3, 4), (0, 1, 1)])
def test_decode_peak_memory_per_pixel(colour_type: int, channels: int, pillow_bytes: int) -> None:
    data = flat_png(colour_type, channels)
    assert len(data) < 300_000
    pixels = SIDE * SIDE
    # Pillow's decoded picture (RGB is stored as 4 bytes a pixel), our RGB output, and 32 MiB of strips and slack.
    budget_mib = pixels * (pillow_bytes + 3) / 2**20 + 32
    peak = peak_mib_of(data)
    assert peak < budget_mib, f"peak {peak:.0f} MiB, budget {budget_mib:.0f} MiB"
