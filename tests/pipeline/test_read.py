"""Pipeline.read decodes big JPEGs at the size their faces need, and answers as the full decode would."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.common import phone_jpeg
from lookalike.pipeline.pipeline import DETAIL_PX, Pipeline

FACES = Path(__file__).resolve().parents[1] / "data" / "faces"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


def test_a_12_megapixel_photo_is_decoded_at_a_quarter_with_the_same_embedding(pipeline: Pipeline) -> None:
    data = phone_jpeg(FACES / "probes" / "hori_miona" / "11.jpg", (4000, 3000))
    image, faces = pipeline.read(data)
    assert image.scale == 0.25 and image.original_size == (4000, 3000)
    assert len(faces) == 1 and min(faces[0].detection.width, faces[0].detection.height) * 0.25 >= DETAIL_PX
    full = pipeline.analyze(pipeline.decode(data))
    assert np.allclose(faces[0].detection.box, full[0].detection.box, atol=12)  # within 3 px of the 1/4 image
    assert cosine(faces[0].embedding, full[0].embedding) > 0.97


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
