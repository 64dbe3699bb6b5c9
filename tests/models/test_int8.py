"""buffalo_s-int8: made here from the wheel's files (nothing downloaded), pinned, reproducible, close to fp32, and a
gallery is re-embedded, never mixed, when the pack changes (`lookalike reindex`)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from lookalike.errors import ModelUnavailable
from lookalike.imaging import decode_image
from lookalike.models import quantize
from lookalike.models.pack import ModelPack, sha256_file
from lookalike.models.packs import resolve_pack, verify_pack
from lookalike.pipeline.aligner import align
from lookalike.pipeline.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[2]
FACES = REPO / "tests" / "data" / "faces"
LOOKALIKE = Path(sys.executable).parent / "lookalike"


@pytest.fixture(scope="module")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("int8-models")


@pytest.fixture(scope="module")
def int8(model_root: Path) -> ModelPack:
    return resolve_pack("buffalo_s-int8", model_root=model_root)


def test_the_pack_is_made_once_from_the_wheel_and_pinned(int8: ModelPack, model_root: Path) -> None:
    base = resolve_pack("buffalo_s", model_root=model_root)
    assert int8.name == "buffalo_s-int8"
    assert int8.detector.parent == model_root / "models" / "buffalo_s-int8"
    made = json.loads((int8.detector.parent / quantize.RECIPE_FILE).read_text())
    assert made["source_sha256"] == base.sha256
    assert made["onnxruntime"] == ort.__version__
    assert made["calibration_photos"] == 25  # the demo gallery
    assert verify_pack(int8) == int8.sha256
    assert made["quantized"] == ["detector"]
    # The detector far smaller than its fp32 file (int8 weights); the embedder the pack's own bytes.
    assert int8.detector.stat().st_size < 0.5 * base.detector.stat().st_size
    assert int8.embedder.read_bytes() == base.embedder.read_bytes()
    # A second resolve finds the files current and leaves them alone.
    stamps = [p.stat().st_mtime_ns for p in int8.files]
    assert resolve_pack("buffalo_s-int8", model_root=model_root) == int8
    assert [p.stat().st_mtime_ns for p in int8.files] == stamps


def test_the_same_inputs_make_the_same_bytes(int8: ModelPack, tmp_path: Path) -> None:
    base = resolve_pack("buffalo_s", model_root=tmp_path)
    quantize.quantize_pack(base, tmp_path, quantize.calibration_photos())
    for made in int8.files:
        assert sha256_file(tmp_path / made.name) == int8.sha256[made.name]


def test_a_replaced_file_is_refused(int8: ModelPack, tmp_path: Path) -> None:
    copy = tmp_path / int8.embedder.name
    copy.write_bytes(int8.embedder.read_bytes()[:-16] + bytes(16))
    with pytest.raises(ModelUnavailable, match="sha256"):
        verify_pack(ModelPack(**{**int8.__dict__, "embedder": copy}))


def test_int8_finds_and_embeds_the_faces_fp32_does(int8: ModelPack, model_root: Path, pipeline: Pipeline) -> None:
    quick = Pipeline(pipeline.settings.model_copy(update={"model_pack": "buffalo_s-int8", "model_root": model_root}))
    assert quick.pack_name == "buffalo_s-int8"
    for rel in ("probes/hori_miona/12.jpg", "strangers/meryl_streep/06.jpg", "group/07.jpg"):
        data = (FACES / rel).read_bytes()
        _, fp32 = pipeline.read(data)
        _, q8 = quick.read(data)
        assert len(q8) == len(fp32)
        # The INT8 detector places the faces as fp32 does, so the one embedder gives nearly the same vectors.
        for a, b in zip(fp32, q8, strict=True):
            assert np.abs(np.subtract(a.detection.box, b.detection.box)).max() < 0.1 * a.detection.width
        cosines = np.sum(np.stack([f.embedding for f in fp32]) * np.stack([f.embedding for f in q8]), axis=1)
        assert cosines.min() >= 0.95, cosines.round(3)
        # The same crops through both packs' embedders: the same numbers (the embedder is not quantized).
        rgb = decode_image(data, max_pixels=40_000_000).rgb
        crops = [align(rgb, f.detection.landmarks) for f in fp32]
        assert np.array_equal(pipeline.embed_crops(crops), quick.embed_crops(crops))


def test_the_quantized_embedder_is_still_made_for_the_benchmark(tmp_path: Path, pipeline: Pipeline) -> None:
    base = resolve_pack("buffalo_s", model_root=tmp_path)
    out = tmp_path / "embedder.int8.onnx"
    quantize.quantize_embedder(base, out, quantize.calibration_photos()[:3])
    assert out.stat().st_size < 0.4 * base.embedder.stat().st_size
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    data = (FACES / "probes/hori_miona/12.jpg").read_bytes()
    _, faces = pipeline.read(data)
    crop = faces[0].crop.astype(np.float32).transpose(2, 0, 1)[None]
    vector = np.asarray(session.run(None, {session.get_inputs()[0].name: (crop - 127.5) / 127.5})[0][0])
    assert float(vector @ faces[0].embedding) / float(np.linalg.norm(vector)) >= 0.9


def test_reindex_reembeds_a_gallery_when_the_pack_changes(int8: ModelPack, model_root: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")}
    env.update(
        {"LOOKALIKE_DATA_DIR": str(tmp_path / "data"), "LOOKALIKE_MODEL_ROOT": str(model_root), "COLUMNS": "200"}
    )

    def lookalike(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        run = subprocess.run(
            [str(LOOKALIKE), *args], cwd=tmp_path, env={**env, **extra}, capture_output=True, text=True, timeout=300
        )
        assert run.returncode == 0, run.stderr
        return run

    lookalike("ingest", str(REPO / "demo" / "gallery"), "--group", "demo")
    changed = lookalike("reindex", LOOKALIKE_MODEL_PACK="buffalo_s-int8")
    assert "25 photos have no face of buffalo_s-int8 (the model pack changed): re-embedding them" in changed.stderr
    assert "25 photos re-embedded with buffalo_s-int8" in changed.stderr
    with sqlite3.connect(tmp_path / "data" / "lookalike.db") as db:
        faces = dict(db.execute("SELECT model_pack, count(*) FROM faces GROUP BY model_pack").fetchall())
        active = db.execute("SELECT model_pack, n_faces FROM index_versions WHERE active").fetchall()
    assert faces == {"buffalo_s": 25, "buffalo_s-int8": 25}
    assert active == [("buffalo_s-int8", 25)]
    # Nothing left to re-embed the second time; back on buffalo_s its own faces serve again.
    again = lookalike("reindex", LOOKALIKE_MODEL_PACK="buffalo_s-int8")
    assert "re-embedding" not in again.stderr
    back = lookalike("reindex")
    assert "re-embedding" not in back.stderr
    diagnosed = json.loads(lookalike("diagnose", str(FACES / "probes/hori_miona/12.jpg"), "--json").stdout)
    assert diagnosed["model_pack"] == "buffalo_s"
    listed = lookalike("models", "list").stdout
    assert re.search(r"^  buffalo_s-int8\s+\S+/models/buffalo_s-int8 \(present\)$", listed, re.MULTILINE), listed
    verified = lookalike("models", "verify", "buffalo_s-int8").stdout
    assert "pack buffalo_s-int8 verified" in verified
