"""Turn uploaded bytes into an upright RGB array, refusing anything that is not a safe, supported picture.

The type is decided from magic bytes only (never a file name or a client's Content-Type). Pixel counts are
checked against the header before any pixel is decoded, so a decompression bomb costs a few hundred bytes of
parsing. Every decoder failure becomes a `CorruptImage`; no other exception type escapes for bad input.

AVIF is refused as `UnsupportedImageType`: pillow-heif 1.x no longer ships an AVIF decoder, and accepting it
through Pillow's own AVIF plugin would be a separate format (and enum member) to add deliberately.
"""

from __future__ import annotations

import enum
import io
import struct
import threading
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import ExifTags, Image

from lookalike.errors import CorruptImage, ImageTooLarge, LookalikeError, NotAnImage, UnsupportedImageType

__all__ = ["DecodedImage", "ImageFormat", "decode_image", "sniff_format"]


class ImageFormat(enum.StrEnum):
    JPEG = "jpeg"
    PNG = "png"
    WEBP = "webp"
    HEIF = "heif"


@dataclass(frozen=True, slots=True)
class DecodedImage:
    rgb: np.ndarray  # HxWx3 uint8, C-contiguous, upright (EXIF orientation applied)
    format: ImageFormat
    original_size: tuple[int, int]  # (width, height) at full resolution, after EXIF orientation
    scale: float  # decoded pixels per original pixel: 1.0, or 1/2, 1/4, 1/8 after a JPEG draft


# --------------------------------------------------------------------------- sniffing

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# HEVC-coded HEIF brands, plus the generic image/sequence brands that libheif decides on when decoding.
_HEVC_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis"})
_GENERIC_HEIF_BRANDS = frozenset({b"mif1", b"msf1"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_BMP_DIB_HEADER_SIZES = frozenset({12, 40, 52, 56, 64, 108, 124})

# Recognised image types this service does not accept (prefix match).
_UNSUPPORTED_PREFIXES: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "BigTIFF"),
    (b"MM\x00+", "BigTIFF"),
    (b"8BPS", "PSD"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"\xff\x0a", "JPEG XL"),
    (b"qoif", "QOI"),
    (b"v/1\x01", "OpenEXR"),
)


def _ftyp_brands(data: bytes) -> list[bytes] | None:
    """Major and compatible brands of a leading ISO-BMFF `ftyp` box, or None when there is none."""
    if len(data) < 16 or data[4:8] != b"ftyp":
        return None
    (box_size,) = struct.unpack(">I", data[:4])
    if box_size < 16:
        return None
    end = min(box_size, len(data), 4096)
    brands = [data[8:12]]
    brands.extend(data[i : i + 4] for i in range(16, end - 3, 4))
    return brands


def _looks_like_svg(data: bytes) -> bool:
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<svg"):
        return True
    return head.startswith((b"<?xml", b"<!doctype svg", b"<!--")) and b"<svg" in head and b"<html" not in head


def sniff_format(data: bytes) -> ImageFormat:
    """Decide the picture type from its magic bytes.

    Raises `UnsupportedImageType` for recognised image types that are not accepted (GIF, BMP, TIFF, AVIF,
    ...), and `NotAnImage` for everything else, empty input included.
    """
    if not data:
        raise NotAnImage("The upload is empty.")
    if data.startswith(b"\xff\xd8\xff"):
        return ImageFormat.JPEG
    if data.startswith(_PNG_SIGNATURE):
        return ImageFormat.PNG
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ImageFormat.WEBP
    brands = _ftyp_brands(data)
    if brands is not None:
        major, brand_set = brands[0], set(brands)
        if major in _HEVC_BRANDS:
            return ImageFormat.HEIF
        if brand_set & _AVIF_BRANDS:
            raise UnsupportedImageType("AVIF pictures are not supported; use JPEG, PNG, WebP or HEIF.")
        if brand_set & (_HEVC_BRANDS | _GENERIC_HEIF_BRANDS):
            return ImageFormat.HEIF
        raise NotAnImage("The upload is an ISO media file (video or audio), not a picture.")
    for prefix, name in _UNSUPPORTED_PREFIXES:
        if data.startswith(prefix):
            raise UnsupportedImageType(f"{name} pictures are not supported; use JPEG, PNG, WebP or HEIF.")
    # "BM" alone is too weak (plenty of text starts with it): also require a known DIB header size.
    if data[:2] == b"BM" and len(data) >= 18 and struct.unpack("<I", data[14:18])[0] in _BMP_DIB_HEADER_SIZES:
        raise UnsupportedImageType("BMP pictures are not supported; use JPEG, PNG, WebP or HEIF.")
    if _looks_like_svg(data):
        raise UnsupportedImageType("SVG pictures are not supported; use JPEG, PNG, WebP or HEIF.")
    raise NotAnImage("The upload is not a JPEG, PNG, WebP or HEIF picture.")


# --------------------------------------------------------------------------- decoding

# Pillow plugin names; passing exactly one to Image.open stops Pillow from guessing another decoder.
_PILLOW_FORMAT = {
    ImageFormat.JPEG: "JPEG",
    ImageFormat.PNG: "PNG",
    ImageFormat.WEBP: "WEBP",
    ImageFormat.HEIF: "HEIF",
}

# EXIF orientation -> the transpose that makes the stored picture upright (same table as ImageOps).
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = frozenset({5, 6, 7, 8})
# libjpeg decodes every scan of a progressive JPEG over the whole picture, however few bytes the scan has: 5,000
# copies of a 20-byte scan in a 200 KB file cost 30 s of CPU for a 12 MP picture, at any draft scale. Encoders
# write 10 or so; an SOS marker cannot occur inside entropy-coded data (0xFF is stuffed there), so counting them
# over-counts only by the scans of an EXIF thumbnail.
_MAX_JPEG_SCANS = 64
# Pixels converted to RGB at a time (see _to_rgb_array).
_STRIP_PIXELS = 1 << 18

_heif_lock = threading.Lock()
_heif_registered = False


def _ensure_heif_opener() -> None:
    global _heif_registered
    if _heif_registered:
        return
    with _heif_lock:
        if not _heif_registered:
            import pillow_heif  # heavy native import: only when a HEIF upload actually arrives

            pillow_heif.register_heif_opener()
            _heif_registered = True


def _orientation(img: Image.Image) -> int:
    # A broken EXIF block must not cost the user an otherwise good photo: treat it as "no orientation".
    try:
        value = img.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) and value in _ORIENTATION_TRANSPOSE else 1


def _draft_request(size: tuple[int, int], max_side: int, coarse_side: int | None = None) -> tuple[int, int] | None:
    """The size to ask `draft` for so that the longest side stays >= max_side (>= coarse_side where the 1/8 step
    keeps that many); None when no step fits.

    draft picks the largest factor k in (8, 4, 2, 1) with k <= min(w // req_w, h // req_h), so asking 1
    for the short side lets the long side alone decide (scaling the short side too would round it up
    and cost a whole step for nothing).
    """
    width, height = size
    longest = max(width, height)
    if coarse_side is not None and longest // 8 >= coarse_side:
        max_side = coarse_side
    if longest < 2 * max_side:  # libjpeg's smallest step is 1/2
        return None
    return (max_side, 1) if width >= height else (1, max_side)


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    """Any Pillow mode -> HxWx3 uint8, compositing transparency on white.

    Converted a strip of rows at a time into the one output array: whole-picture conversions and uint16
    blending cost ~30 bytes per pixel at their peak (about 1 GB for a 36 MP RGBA PNG that compresses to a few
    hundred kilobytes), strips about 3 bytes per pixel plus a few megabytes (tests/hardening/test_decoder_memory.py).
    """
    mode = img.mode
    width, height = img.size
    wide = mode.startswith("I;16") or mode in ("I", "F")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    out = np.empty((height, width, 3), np.uint8)
    rows = max(1, _STRIP_PIXELS // width)
    for top in range(0, height, rows):
        strip = img.crop((0, top, width, min(height, top + rows)))
        if wide:
            # 16-bit grey (PNG): rescale to 8 bits instead of Pillow's clipping, which turns most of it white.
            grey = np.asarray(strip).astype(np.float64)
            out[top : top + rows] = np.clip(np.rint(grey / 257.0), 0, 255)[:, :, None]
        elif has_alpha:
            rgba = np.asarray(strip.convert("RGBA"), dtype=np.uint16)
            alpha = rgba[:, :, 3:4]
            out[top : top + rows] = (rgba[:, :, :3] * alpha + 255 * (255 - alpha) + 127) // 255
        else:
            out[top : top + rows] = np.asarray(strip if strip.mode == "RGB" else strip.convert("RGB"))
    return out


def _decode(
    img: Image.Image, fmt: ImageFormat, max_pixels: int, max_side: int | None, coarse_side: int | None
) -> DecodedImage:
    width, height = img.size
    if width <= 0 or height <= 0:
        raise CorruptImage("The picture has no pixels.")
    if width * height > max_pixels:
        raise ImageTooLarge(f"The picture has {width}x{height} pixels; at most {max_pixels} pixels are accepted.")
    img.seek(0)  # animations: the first frame only
    reduction = 1
    if fmt is ImageFormat.JPEG and max_side is not None:
        request = _draft_request((width, height), max_side, coarse_side)
        drafted = img.draft("RGB", request) if request is not None else None
        if drafted is not None:
            # draft shrinks by an integer factor k (ceil rounding on the size); its box is (0, 0, w/k, h/k).
            reduction = round(width / drafted[1][2])
    img.load()
    if reduction == 1 and img.size != (width, height):
        # The header promised one size and the data held another (a damaged or crafted HEIF, say): the pixel cap
        # and the size reported go by what was decoded, or a small header would let a large picture through.
        width, height = img.size
        if width * height > max_pixels:
            raise ImageTooLarge(f"The picture has {width}x{height} pixels; at most {max_pixels} are accepted.")
    orientation = _orientation(img)
    if orientation in _ORIENTATION_TRANSPOSE:
        img = img.transpose(_ORIENTATION_TRANSPOSE[orientation])
    rgb = _to_rgb_array(img)
    original_size = (height, width) if orientation in _SWAPS_AXES else (width, height)
    return DecodedImage(
        rgb=np.ascontiguousarray(rgb, dtype=np.uint8),
        format=fmt,
        original_size=original_size,
        scale=1.0 / reduction,
    )


def decode_image(
    data: bytes, *, max_pixels: int, max_side: int | None = None, coarse_side: int | None = None
) -> DecodedImage:
    """Decode an uploaded picture to upright RGB.

    `max_pixels` caps width*height from the header, before decoding. With `max_side`, a JPEG larger than
    needed is decoded by libjpeg at 1/2, 1/4 or 1/8 scale, never below `max_side` on its longest side; the
    result is not resized further (the caller resizes for its detector) and `scale` says by how much it was
    reduced. With `coarse_side` too, a JPEG whose 1/8 step keeps `coarse_side` pixels on its longest side is
    decoded at 1/8 (the step that pays: two thirds of the time of the 1/4 step on a 12 MP photo; smaller
    steps save far less). Other formats are decoded at full size.

    Raises NotAnImage, UnsupportedImageType, ImageTooLarge or CorruptImage.
    """
    if max_pixels < 1:
        raise ValueError("max_pixels must be positive")
    if (max_side is not None and max_side < 1) or (coarse_side is not None and coarse_side < 1):
        raise ValueError("max_side and coarse_side must be positive")
    if coarse_side is not None and max_side is None:
        raise ValueError("coarse_side needs max_side")
    fmt = sniff_format(data)
    if fmt is ImageFormat.JPEG and (scans := data.count(b"\xff\xda")) > _MAX_JPEG_SCANS:
        raise CorruptImage(f"The JPEG picture has {scans} scans; at most {_MAX_JPEG_SCANS} are accepted.")
    if fmt is ImageFormat.HEIF:
        _ensure_heif_opener()
    try:
        # Our own cap, checked right after the header is read, is the real guard; Pillow's global bomb
        # check only warns (silenced here) or, past twice its limit, raises (mapped to ImageTooLarge).
        # catch_warnings is process-global in 3.11; a race between threads can at worst leave this one
        # harmless "ignore" filter installed.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[_PILLOW_FORMAT[fmt]]) as img:
                return _decode(img, fmt, max_pixels, max_side, coarse_side)
    except LookalikeError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"The picture has too many pixels ({exc}).") from exc
    except MemoryError:
        raise
    except Exception as exc:
        # Decoders signal bad data with many types (OSError, SyntaxError, ValueError, struct.error,
        # EOFError, RuntimeError from libheif, ...): all of them mean the same thing to the client.
        raise CorruptImage(f"The {fmt.name} picture could not be decoded ({type(exc).__name__}).") from exc
