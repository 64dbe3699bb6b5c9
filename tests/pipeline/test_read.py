"""Pipeline.read decodes big JPEGs at the size their faces need, and answers as the full decode would."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common import phone_jpeg
from lookalike.imaging import decode_image
from lookalike.pipeline.pipeline import DETAIL_PX, Pipeline

FACES = Path(__file__).resolve().parents[1] / "data" / "faces"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


def test_a_12_megapixel_photo_is_decoded_at_an_eighth_with_the_same_embedding(pipeline: Pipeline) -> None:
    data = phone_jpeg(FACES / "probes" / "hori_miona" / "11.jpg", (4000, 3000))
    image, faces = pipeline.read(data)
    assert image.scale == 0.125 and image.original_size == (4000, 3000)
    assert len(faces) == 1 and min(faces[0].detection.width, faces[0].detection.height) * 0.125 >= DETAIL_PX
    full = pipeline.analyze(pipeline.decode(data))
    assert np.allclose(faces[0].detection.box, full[0].detection.box, atol=24)  # within 3 px of the 1/8 image
    assert cosine(faces[0].embedding, full[0].embedding) > 0.97


def test_small_faces_on_the_eighth_are_detected_again_at_the_detectors_size(pipeline: Pipeline) -> None:
    # A group photo twice its size on a 12 MP canvas: its faces (about 100 px of 4000) need the large pass, which
    # a 500 px copy cannot give, so they are found on the 1/4 copy, as without the 1/8 step.
    group = Image.open(FACES / "group" / "07.jpg").convert("RGB")
    canvas = Image.new("RGB", (4000, 3000), (200, 200, 200))
    canvas.paste(group.resize((group.width * 2, group.height * 2), Image.Resampling.BICUBIC), (900, 800))
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=92)
    data = out.getvalue()
    image, faces = pipeline.read(data)
    assert image.scale >= 0.25
    settings = pipeline.settings
    quarter = decode_image(data, max_pixels=settings.max_pixels, max_side=settings.det_size)
    assert quarter.scale == 0.25
    expected = pipeline.detect(quarter)
    assert len(faces) == len(expected) >= 3
    for got, want in zip(faces, expected, strict=True):
        assert np.allclose(got.detection.box, want.box, atol=1e-3)


def test_a_face_too_small_at_the_first_decode_is_embedded_from_a_finer_one(pipeline: Pipeline) -> None:
    # The face spans ~220 px of 4000: 55 px at 1/4, under DETAIL_PX; 110 px at 1/2, enough.
    data = phone_jpeg(FACES / "probes" / "ikoma_rina" / "12.jpg", (4000, 3000))
    image, faces = pipeline.read(data)
    assert image.scale == 0.5
    assert min(faces[0].detection.width, faces[0].detection.height) * image.scale >= DETAIL_PX
    full = pipeline.analyze(pipeline.decode(data))
    assert cosine(faces[0].embedding, full[0].embedding) > 0.97


def test_small_photos_are_decoded_once_at_full_size(pipeline: Pipeline) -> None:
    data = (FACES / "probes" / "saito_asuka" / "11.jpg").read_bytes()
    image, faces = pipeline.read(data)
    assert image.scale == 1.0 and faces
    assert np.allclose(faces[0].embedding, pipeline.analyze(pipeline.decode(data))[0].embedding, atol=1e-5)
