"""A corpus of hostile uploads, generated from the real photos in tests/data/faces (nothing binary committed).

Every sample says which answers are right for it, from the outside: the stable codes it may get, and whether a
picture may come out of it at all. A sample that carries a marker has bytes (a script, an archive) appended that
no response or log line may ever echo.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

FACES = Path(__file__).resolve().parents[1] / "data" / "faces"
NOT_A_PICTURE = frozenset({"not_an_image"})
WRONG_TYPE = frozenset({"not_an_image", "unsupported_image_type"})
TOO_LARGE = frozenset({"image_too_large"})
# Damaged bytes may still be a picture (with or without a face), or be refused with any image error.
DAMAGED = frozenset({"ok", "no_face", "corrupt_image", "not_an_image", "unsupported_image_type", "image_too_large"})
PICTURE = frozenset({"ok", "no_face"})


@dataclass(frozen=True)
class Sample:
    name: str
    kind: str  # truncated, bit_flipped, bomb, wrong_type, animation, polyglot, structure
    data: bytes
    allowed: frozenset[str]  # "ok" for a 200 result, else the error codes that are right
    marker: str | None = None  # appended bytes that must never come back
    member: str | None = None  # the demo member whose intact photo this is: the answer must name them first


def photos() -> list[Path]:
    """Small real photos: probes of the demo members, strangers, and photos without a face."""
    chosen = sorted((FACES / "probes").glob("*/*.jpg")) + sorted((FACES / "noface").glob("*.jpg"))
    chosen += sorted((FACES / "strangers").glob("*/*.jpg"))[:4]
    return chosen


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def flip_bits(data: bytes, rng: np.random.Generator, flips: int) -> bytes:
    mutable = bytearray(data)
    for position in rng.integers(0, len(mutable), flips):
        mutable[position] ^= 1 << int(rng.integers(0, 8))
    return bytes(mutable)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header(width: int, height: int, *, depth: int = 8, colour: int = 2, idat: bytes = b"") -> bytes:
    """A PNG that claims width x height, with whatever pixel data (or none) it is given."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    body = png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat or zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + body + png_chunk(b"IEND", b"")


def jpeg_with_size(jpeg: bytes, width: int, height: int) -> bytes:
    """A real JPEG whose SOF segment claims another size (the scan data stays that of the real one)."""
    for sof in (b"\xff\xc0", b"\xff\xc2", b"\xff\xc1"):
        at = jpeg.find(sof)
        if at > 0:
            return jpeg[: at + 5] + struct.pack(">HH", height, width) + jpeg[at + 9 :]
    raise ValueError("no SOF segment")


def heif_with_size(width: int, height: int) -> bytes:
    """A real HEIF whose image spatial extents box (ispe) claims another size."""
    data = encode(Image.new("RGB", (64, 48), (90, 60, 30)), "HEIF")
    at = data.index(b"ispe") + 8  # box type, then version and flags
    return data[:at] + struct.pack(">II", width, height) + data[at + 8 :]


def gif_header(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00" + b",\x00\x00\x00\x00" + b"\x00" * 20


def webp_vp8x(width: int, height: int) -> bytes:
    """An extended WebP header claiming a canvas of width x height (24-bit fields, minus one), and no frames."""
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little")
    vp8x += (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x


def big_flat_png(width: int, height: int) -> bytes:
    """A real, valid PNG of width x height grey pixels: a few hundred kilobytes for tens of megapixels."""
    row = b"\x00" + b"\x80" * width  # filter byte + one 8-bit grey sample per pixel
    rows_per_call = max(1, 1_000_000 // len(row))
    compressor = zlib.compressobj(1)  # the fastest level still packs these rows about 100:1
    calls = [row * min(rows_per_call, height - top) for top in range(0, height, rows_per_call)]
    idat = b"".join(compressor.compress(block) for block in calls) + compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + (png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b""))
    )


def zip_bytes(name: str, content: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr(name, content)
    return buf.getvalue()


def animation(fmt: str, frames: int, size: int = 16) -> bytes:
    colours = [Image.new("RGB", (size, size), (i * 37 % 256, i * 91 % 256, i * 13 % 256)) for i in range(frames)]
    params: dict[str, object] = {"save_all": True, "append_images": colours[1:], "duration": 10, "loop": 0}
    if fmt == "WEBP":
        params.update(lossless=True, method=0)
    return encode(colours[0], fmt, **params)


# --------------------------------------------------------------------------- the families


def truncated(photo_bytes: list[bytes], per_photo: int) -> Iterator[Sample]:
    for i, data in enumerate(photo_bytes):
        cuts = np.linspace(1, len(data) - 1, per_photo).astype(int)
        for cut in cuts:
            yield Sample(f"truncated-{i}-{cut}", "truncated", data[:cut], DAMAGED)


def bit_flipped(photo_bytes: list[bytes], per_photo: int, rng: np.random.Generator) -> Iterator[Sample]:
    for i, data in enumerate(photo_bytes):
        for j in range(per_photo):
            flips = int(rng.choice([1, 2, 4, 8, 32]))
            yield Sample(f"flipped-{i}-{j}", "bit_flipped", flip_bits(data, rng, flips), DAMAGED)


def other_formats_flipped(photo: bytes, rng: np.random.Generator, count: int) -> Iterator[Sample]:
    img = Image.open(io.BytesIO(photo)).convert("RGB")
    img.thumbnail((200, 200))
    for fmt in ("PNG", "WEBP", "HEIF"):
        data = encode(img, fmt)
        for j in range(count):
            cut = data[: int(rng.integers(1, len(data)))]
            mutated = flip_bits(data, rng, int(rng.integers(1, 6))) if j % 2 else cut
            yield Sample(f"{fmt.lower()}-damaged-{j}", "bit_flipped", mutated, DAMAGED)


def bombs(jpeg: bytes) -> Iterator[Sample]:
    sizes = [(8000, 8000), (20_000, 20_000), (65_535, 65_535), (1_000_000, 1_000_000), (2**31 - 1, 2**31 - 1)]
    sizes += [(100_000, 1_000), (40_001, 1_000), (1, 50_000_000), (50_000_000, 1)]
    for w, h in sizes:
        for colour, depth in ((2, 8), (0, 1), (6, 16), (3, 8)):
            yield Sample(f"png-bomb-{w}x{h}-c{colour}", "bomb", png_header(w, h, depth=depth, colour=colour), TOO_LARGE)
    for w, h in [(65_535, 65_535), (20_000, 20_000), (10_000, 5_000), (7_000, 6_000)]:
        yield Sample(f"jpeg-bomb-{w}x{h}", "bomb", jpeg_with_size(jpeg, w, h), TOO_LARGE)
    for w, h in [(16_383, 16_383), (10_000, 10_000), (16_777_216, 16_777_216)]:
        yield Sample(f"webp-bomb-{w}x{h}", "bomb", webp_vp8x(w, h), TOO_LARGE | {"corrupt_image"})
    for w, h in [(65_535, 65_535), (10_000, 10_000)]:
        yield Sample(f"gif-bomb-{w}x{h}", "bomb", gif_header(w, h), WRONG_TYPE)
    for w, h in [(65_535, 65_535), (20_000, 20_000), (7_000, 6_000)]:
        yield Sample(f"heif-bomb-{w}x{h}", "bomb", heif_with_size(w, h), TOO_LARGE | {"corrupt_image"})
    # Real, valid pictures over the 40 MP cap that compress to almost nothing: decoding them would cost GBs.
    for w, h in [(8_000, 8_000), (40_000, 1_100), (2_000, 20_001)]:
        yield Sample(f"png-flat-{w}x{h}", "bomb", big_flat_png(w, h), TOO_LARGE)
    # Zero-sized and nonsense headers.
    for w, h in [(0, 0), (0, 100), (100, 0)]:
        yield Sample(f"png-empty-{w}x{h}", "bomb", png_header(w, h), frozenset({"corrupt_image"}))


def wrong_types(rng: np.random.Generator) -> Iterator[Sample]:
    small = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    texts = {
        "pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<<>>\n%%EOF\n",
        "html": b"<!DOCTYPE html><html><head><script>alert(1)</script></head><body><img src=x></body></html>",
        "svg": b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>',
        "svg-bare": b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="9"/></svg>',
        "elf": b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00" + b"\x00" * 100,
        "text": b"this is plain text pretending to be a photo\n" * 10,
        "json": b'{"image": "data:image/jpeg;base64,/9j/4AAQ"}',
        "gzip": b"\x1f\x8b\x08\x00" + b"\x00" * 40,
        "wav": b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 40,
        "mp4": struct.pack(">I", 24) + b"ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 40,
        "exe": b"MZ\x90\x00" + b"\x00" * 60,
        "empty": b"",
        "one-byte": b"\xff",
        "jpeg-magic-only": b"\xff\xd8\xff",
        "png-magic-only": b"\x89PNG\r\n\x1a\n",
    }
    texts["zip"] = zip_bytes("a.jpg", b"\xff\xd8\xff" + b"\x00" * 100)
    for name, data in texts.items():
        for k in range(4):  # the same type at a few lengths, with random tails
            tail = bytes(rng.integers(0, 256, 16 * k, dtype=np.uint8)) if name not in ("empty",) else b""
            allowed = WRONG_TYPE if name in ("svg", "svg-bare") else NOT_A_PICTURE
            if name.endswith("magic-only"):
                allowed = frozenset({"corrupt_image"})
            yield Sample(f"{name}-{k}", "wrong_type", data + tail if k else data, allowed)
    for fmt in ("BMP", "TIFF", "GIF", "ICO", "PPM", "TGA", "PCX", "JPEG2000", "QOI", "DDS", "IM", "SGI"):
        for k in range(3):
            img = small.resize((24 + 8 * k, 16 + 8 * k))
            try:
                data = encode(img, fmt)
            except (KeyError, OSError, ValueError):
                continue
            yield Sample(f"{fmt.lower()}-{k}", "wrong_type", data, WRONG_TYPE)
    for k in range(60):
        noise = bytes(rng.integers(0, 256, int(rng.integers(1, 5000)), dtype=np.uint8))
        yield Sample(f"noise-{k}", "wrong_type", noise, WRONG_TYPE | {"corrupt_image"})


def animations() -> Iterator[Sample]:
    yield Sample("gif-3000-frames", "animation", animation("GIF", 3000), WRONG_TYPE)
    yield Sample("apng-3000-frames", "animation", animation("PNG", 3000), PICTURE)
    yield Sample("webp-2000-frames", "animation", animation("WEBP", 2000), PICTURE)
    yield Sample("apng-64px-800-frames", "animation", animation("PNG", 800, 64), PICTURE)
    yield Sample("webp-64px-800-frames", "animation", animation("WEBP", 800, 64), PICTURE)


def polyglots(paths: list[Path]) -> Iterator[Sample]:
    for i, path in enumerate(paths):
        data = path.read_bytes()
        member = path.parent.name if path.parent.parent.name == "probes" else None
        marker = f"LOOKALIKE-POLYGLOT-{i:04d}-7f3a"
        trailers = {
            "html": f"<html><script>alert('{marker}')</script></html>".encode(),
            "php": f"<?php system($_GET['{marker}']); ?>".encode(),
            "shell": f"#!/bin/sh\necho {marker}\n".encode(),
        }
        trailers["zip"] = zip_bytes(f"{marker}.txt", marker.encode())
        for kind, trailer in trailers.items():
            yield Sample(f"polyglot-{kind}-{i}", "polyglot", data + trailer, PICTURE, marker, member)
        png = encode(Image.open(io.BytesIO(data)).convert("RGB"), "PNG", compress_level=1)
        yield Sample(f"polyglot-png-{i}", "polyglot", png + trailers["html"], PICTURE, marker, member)


def structures(jpeg: bytes, rng: np.random.Generator) -> Iterator[Sample]:
    """Valid-looking files built to make a decoder work hard or allocate much."""
    img = Image.open(io.BytesIO(jpeg)).convert("RGB")
    progressive = encode(img, "JPEG", progressive=True, quality=80)
    sos = progressive.find(b"\xff\xda")
    # Thousands of empty scans: some decoders spend time per scan.
    scan = b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00"
    yield Sample("jpeg-5000-scans", "structure", progressive[:sos] + scan * 5000 + b"\xff\xd9", DAMAGED)
    # A flat 3 MP progressive JPEG whose last scan repeats 2,000 times: 90 KB that libjpeg would walk 2,000 times.
    flat = encode(Image.new("RGB", (2000, 1500), (120, 130, 140)), "JPEG", progressive=True)
    last_scan = flat[flat.rindex(b"\xff\xda") : -2]
    repeated = flat[:-2] + last_scan * 2000 + b"\xff\xd9"
    yield Sample("jpeg-2000-repeated-scans", "structure", repeated, frozenset({"corrupt_image"}))
    # Many large APP segments (64 KB each) before the picture.
    app = b"\xff\xe2\xff\xff" + b"\x00" * 65_533
    yield Sample("jpeg-big-app-segments", "structure", jpeg[:2] + app * 24 + jpeg[2:], DAMAGED)
    # A PNG text chunk that inflates to 100 MB (Pillow's own text limit refuses it).
    inflater = zlib.compressobj(9)
    bomb_text = b"".join(inflater.compress(b"A" * 1_000_000) for _ in range(100)) + inflater.flush()
    png = encode(img, "PNG")
    ztxt = png_chunk(b"zTXt", b"comment\x00\x00" + bomb_text)
    yield Sample("png-ztxt-bomb", "structure", png[:33] + ztxt + png[33:], DAMAGED)
    icc = png_chunk(b"iCCP", b"icc\x00\x00" + bomb_text)
    yield Sample("png-iccp-bomb", "structure", png[:33] + icc + png[33:], DAMAGED)
    # Extreme aspect ratios under the pixel cap: a detector resize must not reach a zero side.
    for w, h in [(1, 30_000), (30_000, 1), (2, 10_000), (10_000, 3), (128, 1), (129, 1), (1281, 10), (20_000, 157)]:
        yield Sample(f"png-sliver-{w}x{h}", "structure", big_flat_png(w, h), PICTURE | {"corrupt_image"})
    # 16-bit grey, palette and CMYK pictures of a real face.
    face = np.asarray(img.resize((img.width // 2, img.height // 2)))
    grey16 = Image.fromarray(face[:, :, 0].astype(np.uint16) * 257)
    yield Sample("png-16bit-grey", "structure", encode(grey16, "PNG"), PICTURE)
    yield Sample("png-palette", "structure", encode(img.convert("P"), "PNG"), PICTURE)
    yield Sample("jpeg-cmyk", "structure", encode(img.convert("CMYK"), "JPEG"), PICTURE)
    exif = Image.Exif()
    exif[0x0112] = int(rng.integers(9, 1000))
    yield Sample("jpeg-odd-orientation", "structure", encode(img, "JPEG", exif=exif.tobytes()), PICTURE)
    yield Sample("jpeg-garbage-exif", "structure", encode(img, "JPEG", exif=b"Exif\x00\x00" + b"\x13" * 400), PICTURE)


def corpus(seed: int = 2026) -> list[Sample]:
    import pillow_heif

    pillow_heif.register_heif_opener()  # to *encode* HEIF samples; the service registers its own decoder
    rng = np.random.default_rng(seed)
    paths = photos()
    photo_bytes = [p.read_bytes() for p in paths]
    samples = [
        # Every photo cut and flipped at spread-out places, each variant a full pipeline run when it still decodes;
        # the decoder's Hypothesis properties put thousands more damaged inputs through it in-process.
        *truncated(photo_bytes, per_photo=24),
        *bit_flipped(photo_bytes, per_photo=6, rng=rng),
        *other_formats_flipped(photo_bytes[0], rng, count=20),
        *bombs(photo_bytes[0]),
        *wrong_types(rng),
        *animations(),
        *polyglots(paths[:12]),
        *structures(photo_bytes[2], rng),
    ]
    assert len({s.name for s in samples}) == len(samples), "sample names must be unique"
    return samples
