"""INT8 variants of a model pack (`buffalo_s-int8`), made on this machine from the pack's own files.

The detector is quantized by ONNX Runtime's static quantization (QDQ: int8 weights per output channel, uint8
activations), calibrated on the demo gallery shipped in the repository as its passes see those photos (640, 320
and 128 px inputs of the photo's shape). The embedder stays fp32, a byte copy of the pack's own (rewritten at load
like buffalo_s's, models/sessions.py: cpu_graph): quantized the same way (on the aligned faces and their mirror
images, activation ranges cut at the 99.999th percentile) it ran at 0.68x the speed of its fused fp32 form here
and moved the answers more (docs/benchmarks.md). `quantize_embedder` still makes it, for bench/model_speed.py.

Nothing is downloaded. The files are made on first use into <model_root>/models/<pack>-int8, under a file lock,
beside recipe.json (what they were made from: the source files' and the calibration photos' sha256, ONNX
Runtime's version, RECIPE) and lookalike-sha256.json (their own sha256, checked on every load as for buffalo_l).
A change of any input makes them anew. For one ONNX Runtime version the same inputs give the same bytes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnx import version_converter

from lookalike.errors import ModelUnavailable
from lookalike.models.sessions import cpu_graph

if TYPE_CHECKING:
    from lookalike.models.pack import ModelPack

SUFFIX = "-int8"
# Bump when the way the files are made changes: packs made by another recipe are made anew.
RECIPE = 2  # 2: the embedder stays fp32
DETECTOR, EMBEDDER = "detector.int8.onnx", "embedder.fp32.onnx"
RECIPE_FILE, DIGESTS_FILE = "recipe.json", "lookalike-sha256.json"
# Per-channel quantization needs DequantizeLinear's axis, from opset 13 on (buffalo_s is opset 11).
OPSET = 13
CALIBRATION_SIDES = (640, 320)


def calibration_photos() -> list[Path]:
    from lookalike.db.migrate import ROOT

    photos = sorted(p for p in (ROOT / "demo" / "gallery").rglob("*") if p.suffix.lower() in {".jpg", ".jpeg"})
    if not photos:
        raise ModelUnavailable(f"INT8 packs are calibrated on the demo gallery, and {ROOT / 'demo'} has none")
    return photos


def recipe(base: ModelPack, photos: list[Path]) -> dict[str, object]:
    digest = hashlib.sha256()
    for photo in photos:
        digest.update(photo.read_bytes())
    from lookalike.models.pack import sha256_file

    return {
        "recipe": RECIPE,
        "source": base.name,
        "source_sha256": {p.name: sha256_file(p) for p in base.files},
        "calibration_sha256": digest.hexdigest(),
        "calibration_photos": len(photos),
        "onnxruntime": ort.__version__,
        "quantized": ["detector"],
    }


def int8_dir(base: ModelPack, model_root: Path) -> Path:
    return model_root / "models" / f"{base.name}{SUFFIX}"


def ensure_int8(base: ModelPack, model_root: Path) -> Path:
    """The directory of `base`'s INT8 files, made first (once per host, under a lock) where missing or stale."""
    directory = int8_dir(base, model_root)
    photos = calibration_photos()
    wanted = recipe(base, photos)
    if _current(directory, wanted):
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    with (directory.parent / f".{directory.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _current(directory, wanted):
            return directory
        # Made beside its place and renamed in: no process sees (or pins the digests of) half-written files.
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
        try:
            quantize_pack(base, staging, photos)
            from lookalike.models.pack import sha256_file

            digests = {name: sha256_file(staging / name) for name in (DETECTOR, EMBEDDER)}
            (staging / DIGESTS_FILE).write_text(json.dumps(digests, indent=2))
            (staging / RECIPE_FILE).write_text(json.dumps(wanted, indent=2))
            staging.chmod(0o755)  # mkdtemp's 0700 would hide the pack from other users' workers
            shutil.rmtree(directory, ignore_errors=True)
            staging.replace(directory)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return directory


def _current(directory: Path, wanted: dict[str, object]) -> bool:
    try:
        made = json.loads((directory / RECIPE_FILE).read_text())
    except (OSError, ValueError):
        return False
    return bool(made == wanted and all((directory / n).is_file() for n in (DETECTOR, EMBEDDER, DIGESTS_FILE)))


def quantize_pack(base: ModelPack, out: Path, photos: list[Path]) -> None:
    """Write out/DETECTOR, quantized from `base` and calibrated on `photos`, and out/EMBEDDER, a copy of base's."""
    from onnxruntime.quantization import quantize_static

    detector_inputs, _ = _calibration_inputs(base, photos, faces=False)
    with tempfile.TemporaryDirectory() as scratch:
        det_src = Path(scratch) / "detector.onnx"
        _save_at_opset(onnx.load(str(base.detector)), det_src)
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(str(det_src), str(out / DETECTOR), _Reader(det_src, detector_inputs), **_qdq())
    shutil.copyfile(base.embedder, out / EMBEDDER)


def quantize_embedder(base: ModelPack, out: Path, photos: list[Path]) -> None:
    """`base`'s embedder quantized as the detector is, from its CPU form, into the file `out` (no pack uses it)."""
    from onnxruntime.quantization import CalibrationMethod, quantize_static

    _, face_inputs = _calibration_inputs(base, photos, faces=True)
    with tempfile.TemporaryDirectory() as scratch:
        emb_src = Path(scratch) / "embedder.onnx"
        fused = cpu_graph(base.embedder)
        _save_at_opset(onnx.load_from_string(fused) if fused else onnx.load(str(base.embedder)), emb_src)
        # The percentile calibrator prints its progress: not ours to show.
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(
                str(emb_src),
                str(out),
                _Reader(emb_src, face_inputs),
                calibrate_method=CalibrationMethod.Percentile,
                **_qdq(),
            )


def _qdq() -> dict[str, Any]:
    """QDQ: int8 weights per output channel, uint8 activations."""
    from onnxruntime.quantization import QuantFormat, QuantType

    return {
        "quant_format": QuantFormat.QDQ,
        "per_channel": True,
        "activation_type": QuantType.QUInt8,
        "weight_type": QuantType.QInt8,
    }


def _save_at_opset(model: onnx.ModelProto, path: Path) -> None:
    onnx.save(version_converter.convert_version(model, OPSET), str(path))


def _calibration_inputs(
    base: ModelPack, photos: list[Path], *, faces: bool
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The detector's input blobs and (with `faces`) the embedder's aligned faces for `photos`, as the pipeline
    makes them."""
    from lookalike.imaging import decode_image
    from lookalike.pipeline.aligner import align
    from lookalike.pipeline.detector import TIGHT_CROP_SIZE, FaceDetector, _shrink, _stride_multiple

    # The faces come from the fp32 detector, as the pipeline finds them; without them no session is needed.
    detector = FaceDetector(base.detector, providers=["CPUExecutionProvider"], threads=1) if faces else None
    blobs: list[np.ndarray] = []
    crops: list[np.ndarray] = []
    for photo in photos:
        rgb = decode_image(photo.read_bytes(), max_pixels=40_000_000).rgb
        small, _ = _shrink(rgb, CALIBRATION_SIDES[0])
        h, w = small.shape[:2]
        for side in CALIBRATION_SIDES:
            fit = side / max(h, w)
            blobs.append(_detector_blob(small, (_stride_multiple(w * fit), _stride_multiple(h * fit))))
        blobs.append(_detector_blob(small, (TIGHT_CROP_SIZE, TIGHT_CROP_SIZE)))
        for d in detector.detect(rgb) if detector is not None else []:
            crop = align(rgb, d.landmarks)
            crops += [_face_blob(crop), _face_blob(np.ascontiguousarray(crop[:, ::-1]))]
    return blobs, crops


def _detector_blob(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`rgb` scaled into a `size` input, letterboxed and normalised as insightface's SCRFD does."""
    h, w = rgb.shape[:2]
    scale = min(size[0] / w, size[1] / h)
    fitted = cv2.resize(rgb, (max(1, int(w * scale)), max(1, int(h * scale))))
    canvas = np.zeros((size[1], size[0], 3), np.uint8)
    canvas[: fitted.shape[0], : fitted.shape[1]] = fitted
    return np.asarray(cv2.dnn.blobFromImage(canvas, 1.0 / 128.0, size, (127.5, 127.5, 127.5)), dtype=np.float32)


def _face_blob(crop: np.ndarray) -> np.ndarray:
    """An aligned face as FaceEmbedder feeds it."""
    return ((crop.astype(np.float32).transpose(2, 0, 1)[None] - 127.5) / 127.5).astype(np.float32)


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over a list of inputs."""

    def __init__(self, model: Path, inputs: list[np.ndarray]) -> None:
        name = onnx.load(str(model), load_external_data=False).graph.input[0].name
        self._feeds: Iterator[dict[str, np.ndarray]] = iter([{name: x} for x in inputs])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)
