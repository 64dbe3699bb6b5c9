"""Build, calibrate, write and activate a new index version of a group (one writer per group)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lookalike.config import Settings
from lookalike.db import repository as repo
from lookalike.db.engine import session_scope
from lookalike.errors import LookalikeError, NotFound
from lookalike.index import store
from lookalike.index.calibration import calibrate
from lookalike.index.gallery import GalleryIndex, MemberInfo


@dataclass(frozen=True)
class BuiltVersion:
    version_id: int
    group: str
    n_faces: int
    n_members: int
    threshold: float
    path: Path
    calibration: dict[str, object]


def reindex_group(settings: Settings, group_slug: str, *, model_pack: str) -> BuiltVersion:
    url = settings.sqlalchemy_url
    with session_scope(url) as session:
        group = repo.get_group(session, group_slug)
        if group is None:
            raise NotFound(f"no group {group_slug!r}")
        faces = repo.gallery_faces(session, group, model_pack)
        if faces.embeddings.size == 0:
            raise LookalikeError(
                f"group {group_slug!r} has no usable faces for {model_pack}", code="empty_gallery", status=409
            )
        version = repo.new_index_version(session, group=group, model_pack=model_pack)
        version_id = version.id
        members = {m.id: MemberInfo(id=m.id, slug=m.slug, name=m.name, group=group.slug) for m in faces.members}
    calibration = calibrate(faces.embeddings, faces.member_ids, k=settings.member_top_k, target_fmr=settings.target_fmr)
    gallery = GalleryIndex.build(
        version_id=version_id,
        group=group_slug,
        model_pack=model_pack,
        embeddings=faces.embeddings,
        member_ids=faces.member_ids,
        photo_ids=faces.photo_ids,
        members=members,
        calibration=calibration,
        member_top_k=settings.member_top_k,
    )
    directory, digest = store.save(settings.index_dir, gallery)
    n_members = len(set(faces.member_ids.tolist()))
    with session_scope(url) as session:
        row = session.get_one(repo.IndexVersion, version_id)
        row.n_faces = int(gallery.index.ntotal)
        row.n_members = n_members
        # Relative to the index dir, so a data dir can be moved or mounted elsewhere.
        row.path = str(directory.relative_to(settings.index_dir))
        row.sha256 = digest
        row.threshold = calibration.threshold
        row.calibration = calibration.to_dict()
        repo.activate_version(session, row)
    return BuiltVersion(
        version_id=version_id,
        group=group_slug,
        n_faces=int(gallery.index.ntotal),
        n_members=n_members,
        threshold=calibration.threshold,
        path=directory,
        calibration=calibration.to_dict(),
    )
