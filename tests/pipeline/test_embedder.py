"""ArcFace embeddings (w600k_mbf) of real aligned faces: shape, norm, batching, and that they tell people apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from lookalike.imaging import decode_image
from lookalike.pipeline.aligner import SIZE, align
from lookalike.pipeline.embedder import FaceEmbedder
from lookalike.pipeline.pipeline import Pipeline
from lookalike.pipeline.types import main_face

GALLERY = Path(__file__).resolve().parents[1] / "data" / "faces" / "mini_gallery"
IDENTITIES = ("amelie_mauresmo", "george_w_bush", "tiger_woods", "venus_williams", "john_savage", "kevin_sussman")
Crop = npt.NDArray[np.uint8]


@pytest.fixture(scope="module")
def embedder(pipeline: Pipeline) -> FaceEmbedder:
    return pipeline.load()[1]


@pytest.fixture(scope="module")
def crops(pipeline: Pipeline) -> dict[str, list[Crop]]:
    """Aligned 112x112 crops of the 6 mini-gallery identities with 4 photos each."""
    detector = pipeline.load()[0]
    out: dict[str, list[Crop]] = {}
    for identity in IDENTITIES:
        out[identity] = []
        for path in sorted((GALLERY / identity).glob("*.jpg")):
            rgb = decode_image(path.read_bytes(), max_pixels=40_000_000).rgb
            found = detector.detect(rgb)
            assert found, path
            face = found[main_face(found, rgb.shape[1], rgb.shape[0])]
            out[identity].append(align(rgb, face.landmarks))
    return out


@pytest.fixture(scope="module")
def all_crops(crops: dict[str, list[Crop]]) -> list[Crop]:
    return [c for identity in IDENTITIES for c in crops[identity]]


def test_shape_dtype_and_unit_norm(embedder: FaceEmbedder, all_crops: list[Crop]) -> None:
    assert embedder.dim == 512 and embedder.size == SIZE
    emb = embedder.embed(all_crops)
    assert emb.shape == (len(all_crops), 512)
    assert emb.dtype == np.float32
    assert np.isfinite(emb).all()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_empty_input(embedder: FaceEmbedder) -> None:
    emb = embedder.embed([])
    assert emb.shape == (0, 512) and emb.dtype == np.float32


def test_batch_equals_one_by_one(embedder: FaceEmbedder, all_crops: list[Crop]) -> None:
    batched = embedder.embed(all_crops)
    single = np.concatenate([embedder.embed([c]) for c in all_crops])
    np.testing.assert_allclose(batched, single, atol=1e-4)


def test_batches_split_across_runs(pipeline: Pipeline, all_crops: list[Crop]) -> None:
    """A batch size that does not divide the input (24 faces in runs of 5) gives the same vectors, in order."""
    pack = pipeline.pack
    small = FaceEmbedder(pack.embedder, providers=["CPUExecutionProvider"], threads=1, batch=5)
    np.testing.assert_allclose(small.embed(all_crops), pipeline.load()[1].embed(all_crops), atol=1e-4)


def test_same_person_closer_than_different_people(embedder: FaceEmbedder, crops: dict[str, list[Crop]]) -> None:
    emb = {identity: embedder.embed(crops[identity]) for identity in IDENTITIES}
    for identity in IDENTITIES:
        e = emb[identity]
        genuine = e @ e.T
        same = genuine[np.triu_indices(len(e), k=1)]
        others = np.concatenate([emb[o] for o in IDENTITIES if o != identity])
        different = e @ others.T
        # on average clearly apart, and each photo's nearest other photo is of the same person
        assert same.mean() > different.mean() + 0.3, identity
        for i in range(len(e)):
            assert np.delete(genuine[i], i).max() > different[i].max(), (identity, i)


def test_two_photos_of_one_person_beat_two_people(embedder: FaceEmbedder, crops: dict[str, list[Crop]]) -> None:
    a1, a2 = embedder.embed(crops["george_w_bush"][:2])
    b1 = embedder.embed(crops["venus_williams"][:1])[0]
    assert float(a1 @ a2) > 0.4
    assert float(a1 @ b1) < 0.2
    assert float(a1 @ a2) > float(a1 @ b1) + 0.3


def test_embedding_depends_on_the_face(embedder: FaceEmbedder, crops: dict[str, list[Crop]]) -> None:
    """A mirrored face is nearly the same person; a blank crop is nobody in particular."""
    face = crops["tiger_woods"][0]
    mirrored = np.ascontiguousarray(face[:, ::-1])
    blank = np.full_like(face, 128)
    e = embedder.embed([face, mirrored, blank])
    assert float(e[0] @ e[1]) > 0.6
    assert abs(float(e[0] @ e[2])) < 0.3


def test_batcher_gives_every_thread_its_own_rows(embedder: FaceEmbedder, all_crops: list[Crop]) -> None:
    """Concurrent requests of 1-3 faces, answered from shared batches, equal the embeddings computed alone."""
    from concurrent.futures import ThreadPoolExecutor

    from lookalike.pipeline.batcher import EmbedBatcher

    assert isinstance(embedder, FaceEmbedder)
    alone = embedder.embed(all_crops)
    batcher = EmbedBatcher(embedder, max_faces=16, wait_s=0.02)
    requests = [list(range(i, min(i + 1 + i % 3, len(all_crops)))) for i in range(len(all_crops))]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda rows: batcher.embed([all_crops[r] for r in rows]), requests))
    for rows, answer in zip(requests, answers, strict=True):
        np.testing.assert_allclose(answer, alone[rows], atol=1e-5)
    assert batcher.requests == len(requests)
    assert batcher.runs < len(requests) / 2, "8 concurrent threads should share batches"
    assert batcher.embed([]).shape == (0, 512)


def test_batcher_hands_errors_to_the_batch_and_lives_on(embedder: FaceEmbedder, all_crops: list[Crop]) -> None:
    from lookalike.pipeline.batcher import EmbedBatcher

    assert isinstance(embedder, FaceEmbedder)
    batcher = EmbedBatcher(embedder, max_faces=8, wait_s=0.0)
    with pytest.raises(Exception):  # noqa: B017 - ONNX Runtime's own error type for a wrong input shape
        batcher.embed([np.zeros((50, 50, 3), dtype=np.uint8)])
    np.testing.assert_allclose(batcher.embed(all_crops[:2]), embedder.embed(all_crops[:2]), atol=1e-5)


def test_pipeline_uses_the_batcher_when_configured(tmp_path: Path, all_crops: list[Crop]) -> None:
    from lookalike.config import Settings
    from lookalike.pipeline.batcher import EmbedBatcher

    pipe = Pipeline(Settings(data_dir=tmp_path, batch_wait_ms=2))
    embedder = pipe.load()[1]
    assert isinstance(embedder, EmbedBatcher) and embedder.wait_s == 0.002
    assert isinstance(Pipeline(Settings(data_dir=tmp_path)).load()[1], FaceEmbedder)
    assert embedder.embed(all_crops[:3]).shape == (3, 512)
