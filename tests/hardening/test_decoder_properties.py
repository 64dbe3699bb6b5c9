"""Property tests of the upload decoder: for any bytes, decode_image gives an upright RGB uint8 array within the
pixel cap, or raises one of the four documented image errors; never anything else.

Hypothesis draws arbitrary bytes, bytes behind each accepted magic number (so that they reach the real decoders
rather than stop at the sniffer), and mutations of real pictures (bit flips, cuts, inserted and overwritten runs)
in every accepted format, animations included. `--hypothesis-show-statistics` prints the examples run.
"""

from __future__ import annotations

import os
from functools import cache

import numpy as np
import pillow_heif
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from malformed import FACES, animation, encode
from PIL import Image

from lookalike.errors import CorruptImage, ImageError, ImageTooLarge, NotAnImage, UnsupportedImageType
from lookalike.imaging import ImageFormat, decode_image

DOCUMENTED = {NotAnImage, UnsupportedImageType, CorruptImage, ImageTooLarge}
# CI draws the same examples on every run (a red CI must be reproducible); elsewhere each run draws new ones.
PROPERTY = settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=os.environ.get("CI") == "true",
)
MAGIC = [
    b"\xff\xd8\xff",
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    b"\x89PNG\r\n\x1a\n",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    b"RIFF\x00\x10\x00\x00WEBP",
    b"RIFF\x00\x10\x00\x00WEBPVP8 ",
    b"RIFF\x00\x10\x00\x00WEBPVP8X",
    b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic",
    b"\x00\x00\x00\x14ftypmif1\x00\x00\x00\x00heic",
    b"GIF89a",
    b"BM",
    b"II*\x00",
]


@cache
def seeds() -> tuple[bytes, ...]:
    """Real pictures in every accepted format (and a few refused ones), small enough to decode in milliseconds."""
    pillow_heif.register_heif_opener()  # to encode HEIF here; decode_image registers its own decoder
    photo = FACES / "lfw_mini" / "John_Savage" / "John_Savage_0001.jpg"
    img = Image.open(photo).convert("RGB").resize((48, 48))
    rgba = img.convert("RGBA")
    rgba.putalpha(128)
    return (
        photo.read_bytes(),
        encode(img, "JPEG", quality=80),
        encode(img, "JPEG", progressive=True),
        encode(img, "PNG"),
        encode(rgba, "PNG"),
        encode(img.convert("P"), "PNG", transparency=0),
        encode(img, "WEBP"),
        encode(rgba, "WEBP", lossless=True),
        encode(img, "HEIF", quality=60),
        animation("PNG", 20),
        animation("WEBP", 20),
        encode(img, "GIF"),
        encode(img, "TIFF"),
    )


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds())))
    # Mostly past the magic number, so that most mutants reach a decoder; sometimes anywhere.
    start = draw(st.sampled_from([0, 16, 16, 16]))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(min(start, len(data)), len(data)))
        action = draw(st.sampled_from(["flip", "flip", "flip", "overwrite", "insert", "duplicate", "cut"]))
        if action == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "overwrite":
            chunk = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff", b"\xff"]))
            data[at : at + len(chunk)] = chunk
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif action == "duplicate":
            data[at:at] = data[max(0, at - 256) : at]
        elif action == "cut":
            del data[at:]
    return bytes(data)


def check_decode(data: bytes, max_pixels: int, max_side: int | None) -> str:
    """The property itself: a bounded RGB picture, or one of the documented errors (anything else fails).
    Returns the outcome, for Hypothesis's statistics."""
    try:
        decoded = decode_image(data, max_pixels=max_pixels, max_side=max_side)
    except ImageError as exc:
        assert type(exc) in DOCUMENTED, repr(exc)
        assert 400 <= exc.status < 500 and exc.code and exc.message
        return exc.code
    rgb = decoded.rgb
    assert isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.shape[0] >= 1 and rgb.shape[1] >= 1
    assert rgb.flags.c_contiguous and rgb.flags.writeable
    width, height = decoded.original_size
    assert width * height <= max_pixels
    assert rgb.shape[0] * rgb.shape[1] <= width * height
    assert decoded.format in ImageFormat
    assert decoded.scale in (1.0, 0.5, 0.25, 0.125)
    return f"decoded {decoded.format}"


# The shipped cap, or any cap at all (Hypothesis favours small ones: the pictures here have 2,304 pixels).
caps = st.just(40_000_000) | st.integers(1, 4_000_000)
sides = st.none() | st.integers(1, 2048)


@PROPERTY
@given(data=st.binary(max_size=8192), max_pixels=caps, max_side=sides)
def test_arbitrary_bytes(data: bytes, max_pixels: int, max_side: int | None) -> None:
    event(check_decode(data, max_pixels, max_side))


@PROPERTY
@given(magic=st.sampled_from(MAGIC), tail=st.binary(max_size=4096), max_pixels=caps, max_side=sides)
def test_bytes_behind_a_magic_number(magic: bytes, tail: bytes, max_pixels: int, max_side: int | None) -> None:
    event(check_decode(magic + tail, max_pixels, max_side))


@PROPERTY
@given(data=mutated(), max_pixels=caps, max_side=sides)
def test_mutated_real_pictures(data: bytes, max_pixels: int, max_side: int | None) -> None:
    event(check_decode(data, max_pixels, max_side))


def test_the_seeds_are_pictures() -> None:
    """Mutations start from pictures the decoder reads, or for GIF and TIFF refuses by type: not from junk."""
    refused = 0
    for data in seeds():
        try:
            decoded = decode_image(data, max_pixels=10**8)
        except UnsupportedImageType:
            refused += 1
            continue
        assert decoded.rgb.size > 0
    assert refused == 2


def test_pixel_cap_holds_for_real_pictures() -> None:
    for data in seeds():
        try:
            decoded = decode_image(data, max_pixels=10**8)
        except UnsupportedImageType:
            continue
        width, height = decoded.original_size
        check_decode(data, width * height, None)
        try:
            decode_image(data, max_pixels=width * height - 1)
        except ImageTooLarge:
            continue
        raise AssertionError(f"a {width}x{height} picture passed a cap of {width * height - 1} pixels")
