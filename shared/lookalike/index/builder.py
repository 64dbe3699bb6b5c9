"""Build, calibrate, write and activate a new index version of a group (one writer per group), and rebuild a
version from the database where its files are missing (workers on other hosts share no disk)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lookalike.config import Settings
from lookalike.db import repository as repo
from lookalike.db.engine import session_scope
from lookalike.errors import LookalikeError, NotFound
from lookalike.index import store
from lookalike.index.calibration import Calibration, calibrate
from lookalike.index.gallery import GalleryIndex, MemberInfo
from lookalike.index.writer_lock import group_writer_lock

log = logging.getLogger(__name__)


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
    with group_writer_lock(settings, group_slug):
        return _reindex(settings, group_slug, model_pack)


def _reindex(settings: Settings, group_slug: str, model_pack: str) -> BuiltVersion:
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
        rejected = repo.impostor_faces(session, group, model_pack)
        version_id = repo.new_index_version(session, group=group, model_pack=model_pack).id
        members = {m.id: MemberInfo(id=m.id, slug=m.slug, name=m.name, group=group.slug) for m in faces.members}
    calibration = calibrate(
        faces.embeddings,
        faces.member_ids,
        k=settings.member_top_k,
        target_fmr=settings.target_fmr,
        rejected=rejected,
    )
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
        row.face_ids = faces.face_ids.astype(np.int64).tobytes()
        row.members = [m.__dict__ for m in members.values()]
        row.member_top_k = settings.member_top_k
        repo.activate_version(session, row)
    log.info("group %s: index version %s active (%d faces)", group_slug, version_id, gallery.index.ntotal)
    return BuiltVersion(
        version_id=version_id,
        group=group_slug,
        n_faces=int(gallery.index.ntotal),
        n_members=n_members,
        threshold=calibration.threshold,
        path=directory,
        calibration=calibration.to_dict(),
    )


def rebuild_version(settings: Settings, version_id: int) -> GalleryIndex:
    """Recreate a version's files in this host's cache from what the database holds about it."""
    with session_scope(settings.sqlalchemy_url) as session:
        row = session.get_one(repo.IndexVersion, version_id)
        if row.face_ids is None or row.members is None or row.member_top_k is None:
            raise LookalikeError(f"index version {version_id} predates self-contained versions; reindex its group")
        group = session.get_one(repo.Group, row.group_id).slug
        faces = repo.faces_by_ids(session, np.frombuffer(row.face_ids, dtype=np.int64))
        gallery = GalleryIndex.build(
            version_id=row.id,
            group=group,
            model_pack=row.model_pack,
            embeddings=faces.embeddings,
            member_ids=faces.member_ids,
            photo_ids=faces.photo_ids,
            members={int(m["id"]): MemberInfo(**m) for m in row.members},
            calibration=Calibration.from_dict(row.calibration),
            member_top_k=row.member_top_k,
        )
        expected, path = row.sha256, row.path
    directory, digest = store.save(settings.index_dir, gallery)
    if digest != expected or directory != settings.index_dir / path:
        log.warning("rebuilt index version %s differs from the published manifest", version_id)
    return gallery
