"""Index version files on disk: written atomically (temp file, fsync, rename, manifest last), verified by
sha256 on load. The database holds the embeddings and stays the source of truth; these files are derived.

The FAISS index is stored whatever its kind (flat, PQ fast scan + exact re-rank or HNSW, index.ann: faiss writes
IndexRefineFlat with its PCA and PQ base and the float vectors), with its search parameters; the manifest names
the kind, and a loaded index of another kind is refused."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from lookalike.index import ann
from lookalike.index.calibration import Calibration
from lookalike.index.crowd import Crowd
from lookalike.index.gallery import GalleryIndex, MemberInfo

MANIFEST = "manifest.json"
INDEX_FILE = "faces.faiss"
LABELS_FILE = "labels.npz"
CROWD_FILE = "crowd.npz"


def _write_atomic(path: Path, data: bytes) -> str:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def version_dir(root: Path, group: str, version_id: int) -> Path:
    return root / group / f"v{version_id:06d}"


def save(root: Path, gallery: GalleryIndex) -> tuple[Path, str]:
    """Write a version; returns its directory and the manifest's sha256."""
    directory = version_dir(root, gallery.group, gallery.version_id)
    directory.mkdir(parents=True, exist_ok=True)
    index_bytes = faiss.serialize_index(gallery.index).tobytes()
    buf = io.BytesIO()
    np.savez(buf, member_ids=gallery.member_ids, photo_ids=gallery.photo_ids)
    manifest: dict[str, Any] = {
        "version_id": gallery.version_id,
        "group": gallery.group,
        "model_pack": gallery.model_pack,
        "member_top_k": gallery.member_top_k,
        "n_faces": int(gallery.index.ntotal),
        "index_kind": ann.kind_of(gallery.index),
        "members": [m.__dict__ for m in gallery.members.values()],
        "calibration": gallery.calibration.to_dict(),
        "files": {
            INDEX_FILE: _write_atomic(directory / INDEX_FILE, index_bytes),
            LABELS_FILE: _write_atomic(directory / LABELS_FILE, buf.getvalue()),
            CROWD_FILE: _write_atomic(directory / CROWD_FILE, gallery.crowd.to_bytes()),
        },
    }
    manifest_bytes = json.dumps(manifest, indent=2, ensure_ascii=False).encode()
    digest = _write_atomic(directory / MANIFEST, manifest_bytes)
    _fsync_dir(directory)
    return directory, digest


class CorruptIndex(RuntimeError):
    pass


def load(directory: Path, *, expected_sha256: str | None = None) -> GalleryIndex:
    """Read a version back. Raises CorruptIndex when a file is missing, unreadable or fails its checksum, or when
    the manifest is damaged (files are written atomically, so any of these means the version cannot be trusted)."""
    try:
        return _load(directory, expected_sha256)
    except CorruptIndex:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:  # JSON and Unicode errors are ValueErrors
        raise CorruptIndex(f"index version {directory} cannot be loaded ({type(exc).__name__}: {exc})") from exc


def _load(directory: Path, expected_sha256: str | None) -> GalleryIndex:
    manifest_bytes = (directory / MANIFEST).read_bytes()
    if expected_sha256 is not None and hashlib.sha256(manifest_bytes).hexdigest() != expected_sha256:
        raise CorruptIndex(f"{directory / MANIFEST} is not the published version (sha256 differs)")
    manifest = json.loads(manifest_bytes)
    blobs: dict[str, bytes] = {}
    for name, expected in manifest["files"].items():
        data = (directory / name).read_bytes()
        if hashlib.sha256(data).hexdigest() != expected:
            raise CorruptIndex(f"{directory / name} does not match its manifest checksum")
        blobs[name] = data
    index = faiss.deserialize_index(np.frombuffer(blobs[INDEX_FILE], dtype=np.uint8))
    kind, expected_kind = ann.kind_of(index), manifest.get("index_kind", "flat")  # older versions: all flat
    if kind != expected_kind:
        raise CorruptIndex(f"{directory / INDEX_FILE} holds a {kind} index, the manifest says {expected_kind}")
    labels = np.load(io.BytesIO(blobs[LABELS_FILE]))
    members = {int(m["id"]): MemberInfo(**m) for m in manifest["members"]}
    return GalleryIndex(
        version_id=int(manifest["version_id"]),
        group=manifest["group"],
        model_pack=manifest["model_pack"],
        index=index,
        member_ids=labels["member_ids"].astype(np.int64),
        photo_ids=labels["photo_ids"].astype(np.int64),
        members=members,
        calibration=Calibration.from_dict(manifest["calibration"]),
        member_top_k=int(manifest["member_top_k"]),
        crowd=Crowd.from_bytes(blobs.get(CROWD_FILE)),  # absent from versions built before crowds existed
    )
