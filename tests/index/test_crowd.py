"""The reference crowd: the bundled faces, their embeddings with the real model, and how they are stored."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lookalike.index.crowd import Crowd, bundled_digest, cached_crowd, crowd_crops
from lookalike.index.scoring import member_top_k
from lookalike.pipeline.types import FloatArray


def test_the_bundled_crowd_is_69_people_of_aligned_faces() -> None:
    crops, people, digest = crowd_crops()
    assert len(crops) == len(people) == 340
    assert len(np.unique(people)) == 69
    assert all(c.shape == (112, 112, 3) and c.dtype == np.uint8 for c in crops)
    assert digest == bundled_digest() and len(digest) == 64


def test_each_crowd_face_is_a_face_of_its_person(crowd: Crowd) -> None:
    """Real embeddings: a crowd face is closer to the rest of its person's faces than to anyone else's (the
    crops are faces, aligned as the pipeline aligns them, in the order the tile list says)."""
    assert crowd.embeddings.shape == (340, 512)
    np.testing.assert_allclose(np.linalg.norm(crowd.embeddings, axis=1), 1.0, atol=1e-4)
    sims = crowd.embeddings @ crowd.embeddings.T
    np.fill_diagonal(sims, -np.inf)
    scores = member_top_k(sims, crowd.person_ids, k=3)
    own = scores[np.arange(len(sims)), crowd.person_ids]
    scores[np.arange(len(sims)), crowd.person_ids] = -np.inf
    assert np.mean(own > scores.max(axis=1)) >= 0.97


def test_best_is_the_closest_persons_score(crowd: Crowd) -> None:
    queries = crowd.embeddings[[0, 100, 200]]
    best = crowd.best(queries, k=3)
    expected = member_top_k(queries @ crowd.embeddings.T, crowd.person_ids, k=3).max(axis=1)
    np.testing.assert_allclose(best, expected)
    left_out = crowd.without(np.unique(crowd.person_ids[[0, 100, 200]]))
    assert left_out.n_people == 66
    assert np.all(left_out.best(queries, k=3) < best)


def test_bytes_round_trip_and_the_empty_crowd(crowd: Crowd) -> None:
    again = Crowd.from_bytes(crowd.to_bytes())
    np.testing.assert_array_equal(again.embeddings, crowd.embeddings)
    np.testing.assert_array_equal(again.person_ids, crowd.person_ids)
    assert again.digest == crowd.digest == bundled_digest()
    assert Crowd.from_bytes(None).best(crowd.embeddings[:2], k=3).tolist() == [0.0, 0.0]


def test_the_host_cache_is_used_and_checked(crowd: Crowd, tmp_path: Path) -> None:
    """The embedder here hands back the session's real crowd embeddings: what is tested is the cache."""
    calls: list[int] = []

    def embed(crops: Sequence[np.ndarray]) -> FloatArray:
        calls.append(len(crops))
        return crowd.embeddings

    assert cached_crowd(tmp_path, "buffalo_s", None) is None  # nothing cached, no models: no crowd
    first = cached_crowd(tmp_path, "buffalo_s", embed)
    assert first is not None and calls == [340]
    np.testing.assert_array_equal(first.embeddings, crowd.embeddings)
    again = cached_crowd(tmp_path, "buffalo_s", embed)
    assert again is not None and again.digest == crowd.digest and calls == [340]
    (file,) = tmp_path.iterdir()
    assert file.name.startswith("buffalo_s-")
    file.write_bytes(b"not a crowd")  # damaged: embedded again
    assert cached_crowd(tmp_path, "buffalo_s", embed) is not None and calls == [340, 340]
