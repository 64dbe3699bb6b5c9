"""Decoding uploads: type sniffing, pixel caps, EXIF orientation, JPEG draft, modes, and hostile bytes."""

from __future__ import annotations

import base64
import io
import struct
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from lookalike.errors import CorruptImage, ImageError, ImageTooLarge, NotAnImage, UnsupportedImageType
from lookalike.imaging import DecodedImage, ImageFormat, decode_image, sniff_format

BIG = 100_000_000
TESTS_DATA = Path(__file__).parent / "data"
SHARED_FACES = Path("/work/shared/data/faces")


@pytest.fixture(scope="module", autouse=True)
def _heif_encoder() -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()  # lets the tests *encode* HEIF; decode_image registers on its own


# --------------------------------------------------------------------------- helpers


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def lossless_params(fmt: str) -> dict[str, object]:
    params: dict[str, dict[str, object]] = {
        "JPEG": {"quality": 95},
        "WEBP": {"lossless": True},
        "HEIF": {"quality": 95},
    }
    return params.get(fmt, {})


def upright_pattern() -> np.ndarray:
    """64 wide x 48 high, 4x3 cells of distinct flat colours: every flip/rotation of it is distinguishable."""
    colours = [
        (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200),
        (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230),
        (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40),
    ]  # fmt: skip
    out = np.zeros((48, 64, 3), np.uint8)
    for i, colour in enumerate(colours):
        row, col = divmod(i, 4)
        out[row * 16 : (row + 1) * 16, col * 16 : (col + 1) * 16] = colour
    return out


def stored_for_orientation(upright: np.ndarray, orientation: int) -> np.ndarray:
    """How a camera stores `upright` under each EXIF orientation, written from the spec's row/column wording
    (not from the decoder's transpose table), so the test checks the mapping rather than restating it."""
    stored = {
        1: upright,
        2: np.fliplr(upright),  # row 0 = top, col 0 = right
        3: np.rot90(upright, 2),  # row 0 = bottom, col 0 = right
        4: np.flipud(upright),  # row 0 = bottom, col 0 = left
        5: upright.transpose(1, 0, 2),  # row 0 = left, col 0 = top
        6: np.rot90(upright, 1),  # row 0 = right, col 0 = top
        7: np.fliplr(np.rot90(upright, 1)),  # row 0 = right, col 0 = bottom
        8: np.rot90(upright, -1),  # row 0 = left, col 0 = bottom
    }[orientation]
    return np.ascontiguousarray(stored)


def exif_with_orientation(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def crafted_png(width: int, height: int, idat: bytes) -> bytes:
    """A 1-bit greyscale PNG header of any size, without the pixel data that size would need."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def synthetic_photo(width: int = 320, height: int = 240, seed: int = 0) -> Image.Image:
    """Smooth gradients plus noise: compresses like a photo, unlike flat test patterns."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack([x / width * 255, y / height * 255, (x + y) / (width + height) * 255], axis=2)
    noisy = base + rng.normal(0, 12, base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def real_photos(limit: int = 4) -> list[Path]:
    found = sorted(p for p in TESTS_DATA.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg"})
    if not found and SHARED_FACES.is_dir():
        found = sorted(SHARED_FACES.glob("gallery/*/*.jpg"))
    return found[:limit]


def photo_jpegs() -> list[bytes]:
    """Real photos when there are any, plus a generated one, so the tests never depend on them."""
    return [p.read_bytes() for p in real_photos()] + [encode(synthetic_photo(), "JPEG", quality=90)]


def assert_rgb_array(decoded: DecodedImage) -> None:
    rgb = decoded.rgb
    assert rgb.dtype == np.uint8
    assert rgb.ndim == 3 and rgb.shape[2] == 3
    assert rgb.flags.c_contiguous and rgb.flags.writeable


def decode_or_image_error(data: bytes, **kwargs: int) -> DecodedImage | ImageError:
    """Hostile input may decode or be refused, but only with one of our errors."""
    try:
        decoded = decode_image(data, max_pixels=kwargs.get("max_pixels", BIG), max_side=kwargs.get("max_side"))
    except ImageError as exc:
        return exc
    assert_rgb_array(decoded)
    return decoded


# --------------------------------------------------------------------------- sniffing


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("JPEG", ImageFormat.JPEG),
        ("PNG", ImageFormat.PNG),
        ("WEBP", ImageFormat.WEBP),
        ("HEIF", ImageFormat.HEIF),
    ],
)
def test_sniff_recognises_accepted_formats(fmt: str, expected: ImageFormat) -> None:
    assert sniff_format(encode(synthetic_photo(64, 48), fmt)) is expected


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\x00" * 32


@pytest.mark.parametrize(
    "header",
    [
        ftyp(b"heic", b"mif1", b"heic"),
        ftyp(b"heix", b"mif1"),
        ftyp(b"hevc", b"msf1"),
        ftyp(b"mif1", b"heic"),
        ftyp(b"mif1", b"mif1"),
        ftyp(b"msf1", b"hevc"),
    ],
)
def test_sniff_heif_brands(header: bytes) -> None:
    assert sniff_format(header) is ImageFormat.HEIF


@pytest.mark.parametrize(
    "data",
    [
        ftyp(b"avif", b"mif1", b"miaf"),
        ftyp(b"mif1", b"avif"),
        ftyp(b"avis", b"msf1"),
        b"GIF89a" + b"\x00" * 20,
        b"GIF87a" + b"\x00" * 20,
        b"II*\x00" + b"\x00" * 20,
        b"MM\x00*" + b"\x00" * 20,
        b"8BPS" + b"\x00" * 20,
        b"\x00\x00\x00\x0cJXL \r\n\x87\n" + b"\x00" * 20,
        b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"></svg>',
    ],
)
def test_sniff_refuses_other_image_types(data: bytes) -> None:
    with pytest.raises(UnsupportedImageType):
        sniff_format(data)


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_real_unsupported_images_are_refused(fmt: str) -> None:
    data = encode(synthetic_photo(32, 24), fmt)
    with pytest.raises(UnsupportedImageType):
        sniff_format(data)
    with pytest.raises(UnsupportedImageType):
        decode_image(data, max_pixels=BIG)


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow cannot write AVIF")
def test_real_avif_is_refused() -> None:
    with pytest.raises(UnsupportedImageType):
        decode_image(encode(synthetic_photo(32, 24), "AVIF"), max_pixels=BIG)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"\xff\xd8",  # a JPEG marker cut before it means anything
        b"<!DOCTYPE html><html><body><img src='x.jpg'></body></html>",
        b"<html><svg></svg></html>",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
        b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 30,
        b'{"image": "not really"}',
        b"BMW owners manual, chapter one",
        b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 30,
        ftyp(b"isom", b"isom", b"iso2", b"mp41"),
        ftyp(b"qt  "),
        bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)),
    ],
)
def test_non_images_are_not_images(data: bytes) -> None:
    with pytest.raises(NotAnImage):
        sniff_format(data)
    with pytest.raises(NotAnImage):
        decode_image(data, max_pixels=BIG)


# --------------------------------------------------------------------------- formats and modes


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "HEIF"])
def test_each_format_decodes_to_rgb(fmt: str) -> None:
    upright = upright_pattern()
    decoded = decode_image(encode(Image.fromarray(upright), fmt, **lossless_params(fmt)), max_pixels=BIG)
    assert decoded.format is ImageFormat(fmt.lower())
    assert decoded.original_size == (64, 48)
    assert decoded.scale == 1.0
    assert_rgb_array(decoded)
    assert np.abs(decoded.rgb.astype(int) - upright).mean() < 6


@pytest.mark.parametrize("data", photo_jpegs(), ids=lambda d: f"jpeg{len(d)}")
def test_photos_decode(data: bytes) -> None:
    decoded = decode_image(data, max_pixels=BIG, max_side=640)
    assert_rgb_array(decoded)
    width, height = decoded.original_size
    assert decoded.rgb.shape[:2] == (round(height * decoded.scale), round(width * decoded.scale))
    assert decoded.rgb.std() > 10  # real content, not a blank frame


def rgba_swatch() -> np.ndarray:
    swatch = np.zeros((2, 2, 4), np.uint8)
    swatch[0, 0] = (255, 0, 0, 0)  # fully transparent red -> white
    swatch[0, 1] = (0, 0, 255, 128)  # half-transparent blue -> light blue
    swatch[1, 0] = (0, 255, 0, 255)  # opaque green stays green
    swatch[1, 1] = (0, 0, 0, 255)
    return swatch


SWATCH_ON_WHITE = np.array(
    [[[255, 255, 255], [127, 127, 255]], [[0, 255, 0], [0, 0, 0]]],
    dtype=np.int16,
)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_alpha_is_composited_on_white(fmt: str) -> None:
    img = Image.fromarray(rgba_swatch(), "RGBA")
    decoded = decode_image(encode(img, fmt, **lossless_params(fmt)), max_pixels=BIG)
    assert np.abs(decoded.rgb.astype(np.int16) - SWATCH_ON_WHITE).max() <= 1


def test_la_and_palette_transparency_composite_on_white() -> None:
    la = Image.fromarray(np.array([[[0, 0], [0, 255]]], np.uint8), "LA")
    assert decode_image(encode(la, "PNG"), max_pixels=BIG).rgb.tolist() == [[[255] * 3, [0] * 3]]

    palette = Image.new("P", (2, 1))
    palette.putpalette([255, 0, 0, 0, 0, 255])
    palette.putpixel((0, 0), 0)
    palette.putpixel((1, 0), 1)
    rgb = decode_image(encode(palette, "PNG", transparency=0), max_pixels=BIG).rgb
    assert rgb.tolist() == [[[255, 255, 255], [0, 0, 255]]]

    grey = Image.fromarray(np.array([[10, 200]], np.uint8), "L")
    rgb = decode_image(encode(grey, "PNG", transparency=10), max_pixels=BIG).rgb
    assert rgb.tolist() == [[[255, 255, 255], [200, 200, 200]]]


@pytest.mark.parametrize(
    ("make", "fmt", "expected"),
    [
        (lambda: Image.new("L", (8, 8), 77), "JPEG", (77, 77, 77)),
        (lambda: Image.new("L", (8, 8), 77), "PNG", (77, 77, 77)),
        (lambda: Image.new("1", (8, 8), 1), "PNG", (255, 255, 255)),
        (lambda: Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG", (255, 0, 0)),
        (lambda: Image.new("RGB", (8, 8), (10, 120, 240)), "WEBP", (10, 120, 240)),
    ],
    ids=["L-jpeg", "L-png", "1-png", "CMYK-jpeg", "RGB-webp"],
)
def test_modes_become_rgb(make: Callable[[], Image.Image], fmt: str, expected: tuple[int, int, int]) -> None:
    img = make()
    decoded = decode_image(encode(img, fmt, **lossless_params(fmt)), max_pixels=BIG)
    assert_rgb_array(decoded)
    assert decoded.rgb.shape == (8, 8, 3)
    assert np.abs(decoded.rgb.astype(int) - expected).max() <= 3


def test_sixteen_bit_grey_is_rescaled_not_clipped() -> None:
    img = Image.fromarray(np.array([[0, 257 * 64, 32768, 65535]], np.uint16))
    assert img.mode.startswith("I;16")
    rgb = decode_image(encode(img, "PNG"), max_pixels=BIG).rgb
    assert rgb[0, :, 0].tolist() == [0, 64, 128, 255]
    assert (rgb == rgb[:, :, :1]).all()


# --------------------------------------------------------------------------- orientation


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "HEIF"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_gives_upright_pixels(fmt: str, orientation: int) -> None:
    upright = upright_pattern()
    stored = Image.fromarray(stored_for_orientation(upright, orientation))
    data = encode(stored, fmt, exif=exif_with_orientation(orientation), **lossless_params(fmt))
    decoded = decode_image(data, max_pixels=BIG)
    assert decoded.original_size == (64, 48)
    assert decoded.rgb.shape == upright.shape
    assert np.abs(decoded.rgb.astype(int) - upright).mean() < 6


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_after_jpeg_draft(orientation: int) -> None:
    upright = upright_pattern()
    stored = Image.fromarray(stored_for_orientation(upright, orientation))
    data = encode(stored, "JPEG", exif=exif_with_orientation(orientation), quality=95)
    decoded = decode_image(data, max_pixels=BIG, max_side=32)  # the draft happens in stored orientation
    assert decoded.original_size == (64, 48)
    assert decoded.scale == 0.5
    assert decoded.rgb.shape == (24, 32, 3)
    halved = upright.reshape(24, 2, 32, 2, 3).mean(axis=(1, 3))
    assert np.abs(decoded.rgb - halved).mean() < 8


@pytest.mark.parametrize("exif", [b"Exif\x00\x00" + b"\x13garbage" * 8, exif_with_orientation(9)])
def test_broken_or_odd_exif_is_ignored(exif: bytes) -> None:
    upright = upright_pattern()
    decoded = decode_image(encode(Image.fromarray(upright), "JPEG", exif=exif, quality=95), max_pixels=BIG)
    assert decoded.original_size == (64, 48)
    assert np.abs(decoded.rgb.astype(int) - upright).mean() < 6


# --------------------------------------------------------------------------- JPEG draft


@pytest.fixture(scope="module")
def big_jpeg() -> bytes:
    """Stored 4000x3000 with orientation 6, so the upright picture is 3000 wide and 4000 high."""
    y, x = np.mgrid[0:3000, 0:4000]
    pixels = np.stack([x * 255 // 4000, y * 255 // 3000, ((x // 500 + y // 500) % 2) * 255], axis=2)
    pixels[:500, :500] = (255, 0, 0)  # stored top-left marker: upright top-right after orientation 6
    img = Image.fromarray(pixels.astype(np.uint8))
    return encode(img, "JPEG", quality=85, exif=exif_with_orientation(6))


@pytest.mark.parametrize(
    ("max_side", "factor"),
    [(100, 8), (300, 8), (640, 4), (1000, 4), (1001, 2), (2000, 2), (2001, 1), (5000, 1), (None, 1)],
)
def test_large_jpeg_is_drafted_but_never_below_max_side(big_jpeg: bytes, max_side: int | None, factor: int) -> None:
    decoded = decode_image(big_jpeg, max_pixels=BIG, max_side=max_side)
    assert decoded.original_size == (3000, 4000)
    assert decoded.scale == 1 / factor
    assert decoded.rgb.shape == (4000 // factor, 3000 // factor, 3)
    if max_side is not None:
        assert max(decoded.rgb.shape[:2]) >= min(max_side, 4000)
    marker = decoded.rgb[: 400 // factor, -400 // factor :].reshape(-1, 3).mean(axis=0)
    assert np.abs(marker - (255, 0, 0)).max() < 20  # orientation applied after the draft


@pytest.mark.parametrize(
    ("max_side", "coarse_side", "factor"),
    [(640, 480, 8), (640, 500, 8), (640, 501, 4), (1001, 480, 8), (2001, 501, 1), (2001, 480, 8)],
)
def test_coarse_side_takes_only_the_eighth_step(big_jpeg: bytes, max_side: int, coarse_side: int, factor: int) -> None:
    # 4000 px: 1/8 keeps 500, so a coarse_side up to 500 takes it; otherwise max_side alone decides.
    decoded = decode_image(big_jpeg, max_pixels=BIG, max_side=max_side, coarse_side=coarse_side)
    assert decoded.scale == 1 / factor


@pytest.mark.parametrize(("size", "factor"), [((1920, 1080), 2), ((1024, 768), 1), ((3839, 2000), 4)])
def test_coarse_side_leaves_smaller_jpegs_at_max_side(size: tuple[int, int], factor: int) -> None:
    # Below 8 x coarse_side the 1/2 and 1/4 steps stay where max_side puts them: they save little and cost detail.
    data = encode(synthetic_photo(*size), "JPEG")
    assert decode_image(data, max_pixels=BIG, max_side=640, coarse_side=480).scale == 1 / factor


def test_coarse_side_needs_max_side(big_jpeg: bytes) -> None:
    with pytest.raises(ValueError, match="coarse_side"):
        decode_image(big_jpeg, max_pixels=BIG, coarse_side=480)


def test_drafted_pixels_match_a_downscaled_full_decode(big_jpeg: bytes) -> None:
    full = decode_image(big_jpeg, max_pixels=BIG).rgb.astype(np.float64)
    drafted = decode_image(big_jpeg, max_pixels=BIG, max_side=640).rgb.astype(np.float64)
    block_means = full.reshape(1000, 4, 750, 4, 3).mean(axis=(1, 3))
    assert np.abs(block_means - drafted).mean() < 4


def test_non_jpeg_is_decoded_full_size() -> None:
    img = synthetic_photo(1400, 1000)
    for fmt in ("PNG", "WEBP"):
        decoded = decode_image(encode(img, fmt), max_pixels=BIG, max_side=300)
        assert decoded.scale == 1.0
        assert decoded.rgb.shape == (1000, 1400, 3)


def test_odd_jpeg_sizes_report_the_draft_factor() -> None:
    decoded = decode_image(encode(synthetic_photo(4001, 9), "JPEG"), max_pixels=BIG, max_side=500)
    assert decoded.scale == 1 / 8
    assert decoded.rgb.shape == (2, 501, 3)  # libjpeg rounds partial blocks up


# --------------------------------------------------------------------------- pixel cap


def test_pixel_cap_is_checked_from_the_header_before_decoding() -> None:
    # 20000x20000 with nonsense pixel data: refusing it as too large proves nothing was decoded.
    data = crafted_png(20_000, 20_000, b"not zlib at all")
    with pytest.raises(ImageTooLarge):
        decode_image(data, max_pixels=50_000_000)
    with pytest.raises(CorruptImage):  # same bytes under a larger cap reach the decoder and fail there
        decode_image(crafted_png(200, 200, b"not zlib at all"), max_pixels=50_000_000)


def test_pixel_cap_is_inclusive() -> None:
    data = encode(Image.new("L", (100, 100), 5), "PNG")
    assert decode_image(data, max_pixels=10_000).rgb.shape == (100, 100, 3)
    with pytest.raises(ImageTooLarge):
        decode_image(data, max_pixels=9_999)


def test_large_jpeg_header_is_refused(big_jpeg: bytes) -> None:
    with pytest.raises(ImageTooLarge):
        decode_image(big_jpeg, max_pixels=12_000_000 - 1, max_side=640)


def test_pillow_bomb_error_becomes_image_too_large() -> None:
    with pytest.raises(ImageTooLarge):
        decode_image(crafted_png(100_000, 100_000, b"x"), max_pixels=10**12)


def test_pillow_bomb_warning_never_escapes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 6_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        decoded = decode_image(encode(Image.new("L", (80, 80), 9), "PNG"), max_pixels=BIG)  # warns in Pillow
        assert decoded.rgb.shape == (80, 80, 3)
        with pytest.raises(ImageTooLarge):  # past twice Pillow's limit Pillow itself refuses
            decode_image(encode(Image.new("L", (120, 120), 9), "PNG"), max_pixels=BIG)


def test_invalid_limits_are_programming_errors() -> None:
    data = encode(Image.new("L", (4, 4)), "PNG")
    with pytest.raises(ValueError):
        decode_image(data, max_pixels=0)
    with pytest.raises(ValueError):
        decode_image(data, max_pixels=BIG, max_side=0)


# --------------------------------------------------------------------------- animations


FRAME_COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


@pytest.mark.parametrize("fmt", ["WEBP", "PNG"])
def test_animations_give_their_first_frame(fmt: str) -> None:
    frames = [Image.new("RGB", (16, 16), colour) for colour in FRAME_COLOURS]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, lossless=True)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3
    decoded = decode_image(data, max_pixels=BIG)
    assert decoded.rgb.shape == (16, 16, 3)
    assert np.abs(decoded.rgb.astype(int) - FRAME_COLOURS[0]).max() <= 2


def test_animated_gif_is_unsupported() -> None:
    frames = [Image.new("RGB", (16, 16), colour) for colour in FRAME_COLOURS]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    with pytest.raises(UnsupportedImageType):
        decode_image(data, max_pixels=BIG)


# --------------------------------------------------------------------------- hostile bytes


@pytest.mark.parametrize("data", photo_jpegs(), ids=lambda d: f"jpeg{len(d)}")
def test_truncated_jpeg_is_corrupt_or_decodes(data: bytes) -> None:
    with pytest.raises(CorruptImage):
        decode_image(data[: len(data) // 2], max_pixels=BIG)
    for cut in (3, 4, 20, 100, 400, *(len(data) * k // 20 for k in range(1, 20)), len(data) - 2):
        decode_or_image_error(data[:cut])


def flip_bits(data: bytes, rng: np.random.Generator, flips: int) -> bytes:
    mutable = bytearray(data)
    for position in rng.integers(0, len(mutable), flips):
        mutable[position] ^= 1 << int(rng.integers(0, 8))
    return bytes(mutable)


@pytest.mark.parametrize("data", photo_jpegs(), ids=lambda d: f"jpeg{len(d)}")
def test_bit_flipped_jpeg_is_corrupt_or_decodes(data: bytes) -> None:
    rng = np.random.default_rng(len(data))
    outcomes = [decode_or_image_error(flip_bits(data, rng, int(rng.integers(1, 9)))) for _ in range(150)]
    assert any(isinstance(o, DecodedImage) for o in outcomes)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "HEIF"])
def test_damaged_other_formats_are_corrupt_or_decode(fmt: str) -> None:
    data = encode(synthetic_photo(96, 64), fmt)
    rng = np.random.default_rng(7)
    with pytest.raises(CorruptImage):
        decode_image(data[: len(data) // 2], max_pixels=BIG)
    for _ in range(60):
        decode_or_image_error(flip_bits(data, rng, int(rng.integers(1, 6))))
        decode_or_image_error(data[: int(rng.integers(1, len(data)))])


def test_valid_magic_followed_by_garbage_is_corrupt() -> None:
    rng = np.random.default_rng(3)
    noise = bytes(rng.integers(0, 256, 2048, dtype=np.uint8))
    for prefix in (
        b"\xff\xd8\xff",
        b"\x89PNG\r\n\x1a\n",
        b"RIFF\x00\x10\x00\x00WEBP",
        ftyp(b"heic", b"mif1"),
    ):
        with pytest.raises(CorruptImage):
            decode_image(prefix + noise, max_pixels=BIG)


# A 48x48 HEIF (John_Savage_0001 from tests/data/faces, shrunk) with a few bytes changed by the decoder's property
# test: its header says 48x48 and its data decode to 64 wide and 48 high.
HEIF_SMALLER_HEADER = base64.b64decode(
    "AAAAHGZ0eXBoZWljAAAAAG1pZjFoZWljbWlhZgAAAX1tZXRhAAAAAAAAACFoZGxyAAAAAAAAAABwaWN0AAAAAAAAAAAAAAAAAAAA"
    "ACJpbG9jAAAAAERAAAEAAQAAAAABoQABAAAAAAAAAt4AAAAjaWluZgAAAAAAAQAAABVpbmZlAgAAAAABAABodmMxAAAAAA5waXRt"
    "AAAAAAABAAAA/WlwcnAAAADdaXBjbwAAAHZodmNDAQNwAAAAkAAAAAAAHvAA/P34+AAADwNgAAEAGEABDAH//wNwAAADAJAAAAMA"
    "AAMAHroCQGEAAQAqQgEBA3AAAAMAkAAAAwAAAwAeoCCBBZbq5Ka5uAhoMCAAAAMDIAAAAwAhYgABAAZEAcFzwIkAAAATY29scm5j"
    "bHgAAQANAAaAAAAAFGlzcGUAAAAAAAAAQAAAAEAAAAAoY2xhcAAAADAAAAABAAAAMAAAAAH+///wAAAAAv////AAAAACAAAAEHBp"
    "eGkAAAAAAwgICAAAABhpcG1hAAAAAAAAAAEAAQWBAgMFhAAAAuZtZGF0AAAC2igBrwngF1zDiFSO5Hkm44M9ybjknuVOUxBk3PHN"
    "2S9Fq13x9U9f6Y5QCT/myuItYEyNnL/fMG9NQf1K1IVgkUqqHZOVNsFnAwnnDqaKujc0K1YCthnu+gDzbI4rgOIQeCdE0O2mImLS"
    "Ei631CXWzeZzkw9pVmiVLpX2XaeZekxYXLe+54yTLYBhNTIqAExtgF17OoTkhqBPxuS2QYYrLG7FQLaU0jDNt0rEWWtmixYC+VQa"
    "KDaPa0k1xauw+0cfMDXkj/XqlRz54gyduHaVLYQdKYou2us4QJffDWk7/zw73I8eI6av5geYuhSShRxz/scLMgKEDuFuoI3AKG14"
    "k88YbUi/GdcTRoONq0WzXDJyouobfrNmLsVZY/a0MsxhKC445/z8B/jLLLrkAtCWnZta+aIA2gPtW1C+3a9hwIqgohVdccg46RpG"
    "WpSlxZuDJwvq1T+c0efRzJ+tO5G/Ume65HlcTlJZrzQ+pPwzmOYJM6dZ87Sji0Gvc5vROy85wFhzq0X094G9J6+oXg11AKqUkzuA"
    "K7lYWVH4CIItxwfpQKVtsbxvdNUJVViYiSLZIDiGroYjPq40+ZUOz+t8+W6PkgzWA9jLRlbFJvjIExkV3gZTWzHOTM4qlI86/d0C"
    "JxsVcpXEjaXKoukKSQNTuoUC4T+uiaVN0gAnCT63/+imMx87ZJBFxePJ5aAIkEdicl8btLRtOsFgPLn0tZb1C5lfFZY6G/VQ3kDt"
    "OrcHOGlKQXNEthTvvXRORyLgrAR6WxOBLIApvhf2f1b09cMxVNkx/ulPX7bgiAZo1YoUIXEdChBZie8vUvnjl//AMwJ/Roh6T8vM"
    "GMkvsWSs+HVlhagHlXBjZp79vSFvgV/Emjj4oqA/JUou9Kt98f/6yBSjXD1TtD2BQFSoI4YkSjrJCn4Or64aNya3IxDV0S6F/rYb"
    "SFTU2jCDdCOWYM2UwG70ZF4i6d1o/Y4cf/w="
)


def test_the_pixel_cap_counts_what_was_decoded_not_what_the_header_said() -> None:
    decoded = decode_image(HEIF_SMALLER_HEADER, max_pixels=40_000_000)
    height, width = decoded.rgb.shape[:2]
    assert (width, height) == decoded.original_size == (64, 48)
    with pytest.raises(ImageTooLarge):
        decode_image(HEIF_SMALLER_HEADER, max_pixels=48 * 48)  # the header alone would have passed this cap
