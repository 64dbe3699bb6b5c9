"""What a model pack is: its two ONNX files and where they come from (models/packs.py resolves the packs), and
the checksum every file of a pack is held to."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ModelPack:
    name: str
    detector: Path
    embedder: Path
    source: str
    sha256: dict[str, str] = field(default_factory=dict)

    @property
    def files(self) -> tuple[Path, Path]:
        return (self.detector, self.embedder)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
