"""A gallery's faces for the model pack in use, made from its stored photos when the pack changes.

Embeddings of different packs never mix: an index version is built from faces of one pack only. So when the pack
changes (buffalo_s to buffalo_s-int8, say), `lookalike reindex` first re-embeds every usable photo of the group
that has no face of the new pack, from the photo file kept at ingestion, and builds the version from those. The
faces of the other pack stay (switching back needs no re-embedding).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from lookalike.config import Settings
from lookalike.db import repository as repo
from lookalike.db.engine import session_scope
from lookalike.errors import ImageError
from lookalike.pipeline.pipeline import AnalyzedFace, Pipeline
from lookalike.pipeline.types import Detection, main_face

log = logging.getLogger(__name__)


@dataclass
class Reembedded:
    photos: int = 0
    no_face: list[int] = field(default_factory=list)  # photo ids the new pack finds no face in


def photos_to_reembed(settings: Settings, group_slug: str, model_pack: str) -> int:
    with session_scope(settings.sqlalchemy_url) as session:
        return len(repo.photos_without_pack(session, group_slug, model_pack))


def reembed_group(settings: Settings, pipeline: Pipeline, group_slug: str) -> Reembedded:
    """Add a face of `pipeline`'s pack to every usable photo of the group that lacks one."""
    pack = pipeline.pack_name
    with session_scope(settings.sqlalchemy_url) as session:
        todo = [
            (photo.id, photo.path, [_detection(f) for f in photo.faces])
            for photo in repo.photos_without_pack(session, group_slug, pack)
        ]
    done = Reembedded()
    for photo_id, path, kept in todo:
        # The models run outside any transaction: SQLite would hold its write lock meanwhile.
        try:
            image, faces = pipeline.read((settings.photo_dir / path).read_bytes())
        except (OSError, ImageError) as exc:
            log.warning("cannot re-embed photo %s: %s", photo_id, exc)
            faces = []
        if not faces:
            done.no_face.append(photo_id)
            continue
        face = _same_face(faces, kept) if kept else faces[main_face([f.detection for f in faces], *image.original_size)]
        with session_scope(settings.sqlalchemy_url) as session:
            photo = session.get_one(repo.Photo, photo_id)
            repo.add_face(session, photo=photo, detection=face.detection, model_pack=pack, embedding=face.embedding)
        done.photos += 1
    return done


def _detection(face: repo.Face) -> Detection:
    import numpy as np

    x1, y1, x2, y2 = face.box
    return Detection(box=(x1, y1, x2, y2), score=face.det_score, landmarks=np.asarray(face.landmarks, np.float32))


def _same_face(faces: list[AnalyzedFace], kept: list[Detection]) -> AnalyzedFace:
    """The face found where the photo's kept face (curation's choice, in a group photo) is."""

    def overlap(a: Detection, b: Detection) -> float:
        w = max(0.0, min(a.box[2], b.box[2]) - max(a.box[0], b.box[0]))
        h = max(0.0, min(a.box[3], b.box[3]) - max(a.box[1], b.box[1]))
        return w * h / (a.width * a.height + b.width * b.height - w * h)

    return max(faces, key=lambda f: max(overlap(f.detection, k) for k in kept))
