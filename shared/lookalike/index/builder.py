"""Build, calibrate, write and activate a new index version of a group (one writer per group), and rebuild a
version from the database where its files are missing (workers on other hosts share no disk)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.config import Settings
from lookalike.db import repository as repo
from lookalike.db.engine import session_scope
from lookalike.errors import LookalikeError, NotFound
from lookalike.index import store
from lookalike.index.calibration import Calibration, calibrate
from lookalike.index.crowd import EMPTY, Crowd, EmbedCrops, bundled_digest, cached_crowd
from lookalike.index.gallery import GalleryIndex, MemberInfo
from lookalike.index.suspects import Suspect
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

    @property
    def suspect_pairs(self) -> list[dict[str, Any]]:
        pairs: list[dict[str, Any]] = self.calibration.get("suspects", [])  # type: ignore[assignment]
        return pairs


def reindex_group(
    settings: Settings, group_slug: str, *, model_pack: str, embed: EmbedCrops | None = None
) -> BuiltVersion:
    """`embed`: the pack's embedder, for the reference crowd; without it (a process with no models loaded) the
    crowd of the pack's newest version is reused."""
    with group_writer_lock(settings, group_slug):
        return _reindex(settings, group_slug, model_pack, embed)


def _crowd(settings: Settings, model_pack: str, embed: EmbedCrops | None) -> Crowd:
    """The pack's newest stored crowd, else the one embedded on this host, else embedded now."""
    with session_scope(settings.sqlalchemy_url) as session:
        stored = Crowd.from_bytes(repo.latest_crowd(session, model_pack))
    if stored.digest == bundled_digest():
        return stored
    crowd = cached_crowd(settings.model_root / "crowd", model_pack, embed)
    if crowd is None:
        log.warning("no reference crowd for %s yet and no models here: this version scores without one", model_pack)
        return EMPTY
    return crowd


def _suspect_report(
    suspects: list[Suspect], faces: repo.GalleryFaces, members: dict[int, MemberInfo], statuses: dict[int, str]
) -> list[dict[str, Any]]:
    report = []
    for s in suspects:
        photo = int(faces.photo_ids[s.face])
        report.append(
            {
                "photo_id": photo,
                "member_id": s.member,
                "member": members[s.member].slug,
                "other_photo_id": int(faces.photo_ids[s.other_face]),
                "other_member_id": s.other_member,
                "other_member": members[s.other_member].slug,
                "similarity": s.similarity,
                "score": s.score,
                "own": s.own,
                "kind": s.kind,
                # flagged: sent to the review queue and left out of this version; approved: a reviewer kept it.
                "status": "approved" if statuses.get(photo) == "approved" else "flagged",
            }
        )
    return report


def _reindex(settings: Settings, group_slug: str, model_pack: str, embed: EmbedCrops | None) -> BuiltVersion:
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
    calibrated = calibrate(
        faces.embeddings,
        faces.member_ids,
        k=settings.member_top_k,
        target_fmr=settings.target_fmr,
        lookalike_quantile=settings.lookalike_quantile,
        rejected=rejected,
        crowd=_crowd(settings, model_pack, embed),
    )
    with session_scope(url) as session:
        statuses = repo.photo_statuses(session, [int(faces.photo_ids[s.face]) for s in calibrated.suspects])
    report = _suspect_report(calibrated.suspects, faces, members, statuses)
    calibration = replace(calibrated.calibration, suspects=report)
    # Suspects nobody approved go to the review queue and stay out of the version, as curation's flagged photos do.
    flagged = {r["photo_id"] for r in report if r["status"] == "flagged"}
    keep = ~np.isin(faces.photo_ids, list(flagged))
    gallery = GalleryIndex.build(
        version_id=version_id,
        group=group_slug,
        model_pack=model_pack,
        embeddings=faces.embeddings[keep],
        member_ids=faces.member_ids[keep],
        photo_ids=faces.photo_ids[keep],
        members=members,
        calibration=calibration,
        member_top_k=settings.member_top_k,
        crowd=calibrated.crowd,
    )
    directory, digest = store.save(settings.index_dir, gallery)
    n_members = len(set(faces.member_ids[keep].tolist()))
    with session_scope(url) as session:
        repo.flag_suspects(
            session,
            {
                r["photo_id"]: (f"suspect:{r['other_member']}", r["similarity"])
                for r in report
                if r["status"] == "flagged"
            },
        )
        row = session.get_one(repo.IndexVersion, version_id)
        row.n_faces = int(gallery.index.ntotal)
        row.n_members = n_members
        # Relative to the index dir, so a data dir can be moved or mounted elsewhere.
        row.path = str(directory.relative_to(settings.index_dir))
        row.sha256 = digest
        row.threshold = calibration.threshold
        row.calibration = calibration.to_dict()
        row.face_ids = faces.face_ids[keep].astype(np.int64).tobytes()
        row.members = [m.__dict__ for m in members.values()]
        row.member_top_k = settings.member_top_k
        row.crowd = calibrated.crowd.to_bytes()
        repo.activate_version(session, row)
    log.info(
        "group %s: index version %s active (%d faces, %d suspected label errors)",
        group_slug,
        version_id,
        gallery.index.ntotal,
        len(report),
    )
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
            crowd=Crowd.from_bytes(row.crowd),
        )
        expected, path = row.sha256, row.path
    directory, digest = store.save(settings.index_dir, gallery)
    if digest != expected or directory != settings.index_dir / path:
        log.warning("rebuilt index version %s differs from the published manifest", version_id)
    return gallery
