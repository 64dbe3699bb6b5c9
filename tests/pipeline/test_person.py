"""Several photos of one person: combined into one query, and a photo of someone else named."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.errors import DifferentPeople
from lookalike.pipeline.person import combine, odd_one_out
from lookalike.pipeline.pipeline import Pipeline
from tests.conftest import DATA


def unit(*rows: list[float]) -> np.ndarray:
    m = np.array(rows, np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def test_combine_is_the_unit_mean() -> None:
    q = combine(unit([1, 0, 0], [0, 1, 0]))
    np.testing.assert_allclose(q, [2**-0.5, 2**-0.5, 0], atol=1e-6)


def test_the_photo_unlike_the_others_is_named() -> None:
    same = unit([1, 0.1, 0], [1, -0.1, 0.05], [1, 0, -0.1])
    assert odd_one_out(same, min_similarity=0.15) is None
    with_other = np.concatenate([same[:2], unit([0, 0, 1]), same[2:]])
    odd = odd_one_out(with_other, min_similarity=0.15)
    assert odd is not None and odd[0] == 2 and odd[1] < 0.15
    # Two photos: no majority; the second is named.
    assert odd_one_out(unit([1, 0, 0], [0, 1, 0]), min_similarity=0.15) == (1, 0.0)
    assert odd_one_out(same[:1], min_similarity=0.15) is None


def main_embedding(pipeline: Pipeline, path: str) -> np.ndarray:
    _, mains = pipeline.read_person([(DATA / path).read_bytes()])
    return mains[0].embedding


def test_real_photos_of_one_person_pass_and_a_stranger_is_named(pipeline: Pipeline) -> None:
    """Real faces: a member's two probe photos and one gallery photo are one person; Bill Gates among them is not."""
    photos = ["probes/saito_asuka/11.jpg", "probes/saito_asuka/12.jpg", "../../../demo/gallery/saito_asuka/01.jpg"]
    emb = np.stack([main_embedding(pipeline, p) for p in photos])
    query = pipeline.person_query(emb)
    assert np.linalg.norm(query) == pytest.approx(1.0, abs=1e-5)
    gates = main_embedding(pipeline, "strangers/bill_gates/04.jpg")
    with pytest.raises(DifferentPeople) as caught:
        pipeline.person_query(np.stack([emb[0], gates, emb[1]]))
    assert caught.value.photo == 2
    assert caught.value.to_dict()["photo"] == 2
    assert "photo 2 of 3" in caught.value.message
