"""The CPU form of a graph (models/sessions.py: cpu_graph) on the real buffalo_s files: the embedder's PRelus are
rewritten, its embeddings stay the same; the detector has none and loads as it is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from lookalike.imaging import decode_image
from lookalike.models.packs import resolve_pack
from lookalike.models.sessions import cpu_graph, create_session
from lookalike.pipeline.aligner import align
from lookalike.pipeline.pipeline import Pipeline

FACES = Path(__file__).resolve().parents[1] / "data" / "faces"


@pytest.fixture(scope="module")
def crops(pipeline: Pipeline) -> np.ndarray:
    """Aligned faces of real photos, as the embedder gets them (float NCHW, as FaceEmbedder feeds it)."""
    detector = pipeline.load()[0]
    faces = []
    for rel in ("probes/hori_miona/12.jpg", "strangers/meryl_streep/06.jpg", "group/07.jpg"):
        rgb = decode_image((FACES / rel).read_bytes(), max_pixels=40_000_000).rgb
        faces += [align(rgb, d.landmarks) for d in detector.detect(rgb)]
    blob = np.stack(faces).astype(np.float32).transpose(0, 3, 1, 2)
    return np.ascontiguousarray((blob - 127.5) / 127.5)


def test_the_embedder_loses_its_prelus_and_keeps_its_embeddings(crops: np.ndarray) -> None:
    embedder = resolve_pack("buffalo_s", model_root=Path("/nonexistent")).embedder
    rewritten = cpu_graph(embedder)
    assert rewritten is not None
    ops = [n.op_type for n in onnx.load_from_string(rewritten).graph.node]
    assert "PRelu" not in ops
    assert "PRelu" in [n.op_type for n in onnx.load(str(embedder)).graph.node]

    quiet = ort.SessionOptions()
    quiet.log_severity_level = 3  # the graph declares a batch of 1
    original = ort.InferenceSession(str(embedder), sess_options=quiet, providers=["CPUExecutionProvider"])
    fast = create_session(embedder, providers=["CPUExecutionProvider"], threads=1)
    name = original.get_inputs()[0].name
    a = original.run(None, {name: crops})[0]
    b = fast.run(None, {name: crops})[0]
    assert len(a) == 7  # two portraits and a group of five
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    np.testing.assert_allclose(b, a, atol=1e-5)
    assert float(np.min(np.sum(a * b, axis=1))) > 1 - 1e-6


def test_a_graph_without_prelu_is_left_alone() -> None:
    assert cpu_graph(resolve_pack("buffalo_s", model_root=Path("/nonexistent")).detector) is None
