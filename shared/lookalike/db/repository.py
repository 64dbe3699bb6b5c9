"""Every query the services make. Functions take a Session and never commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from lookalike.db.models import Face, Group, IndexVersion, Job, Member, Photo, utcnow

__all__ = ["Face", "Group", "IndexVersion", "Job", "Member", "Photo"]
from lookalike.index.scoring import IntArray
from lookalike.pipeline.types import FloatArray

USABLE_PHOTO = ("ok", "approved")


def get_group(session: Session, slug: str) -> Group | None:
    return session.scalar(select(Group).where(Group.slug == slug))


def ensure_group(session: Session, slug: str, name: str | None = None) -> Group:
    group = get_group(session, slug)
    if group is None:
        group = Group(slug=slug, name=name or slug)
        session.add(group)
        session.flush()
    elif name:
        group.name = name
    return group


def ensure_member(session: Session, group: Group, slug: str, name: str | None = None, **meta: Any) -> Member:
    member = session.scalar(select(Member).where(Member.group_id == group.id, Member.slug == slug))
    if member is None:
        member = Member(group_id=group.id, slug=slug, name=name or slug, meta=meta, active=True)
        session.add(member)
        session.flush()
    else:
        if name:
            member.name = name
        if meta:
            member.meta = {**member.meta, **meta}
    return member


def find_photo(session: Session, member_id: int, sha256: str) -> Photo | None:
    return session.scalar(select(Photo).where(Photo.member_id == member_id, Photo.sha256 == sha256))


def add_photo(
    session: Session,
    *,
    member: Member,
    sha256: str,
    path: str,
    width: int,
    height: int,
    source_url: str | None = None,
    fetched_at: datetime | None = None,
    status: str = "ok",
) -> Photo:
    photo = Photo(
        member_id=member.id,
        sha256=sha256,
        path=path,
        width=width,
        height=height,
        source_url=source_url,
        fetched_at=fetched_at,
        status=status,
    )
    session.add(photo)
    session.flush()
    return photo


def add_face(
    session: Session,
    *,
    photo: Photo,
    box: list[float],
    landmarks: list[list[float]],
    det_score: float,
    model_pack: str,
    embedding: FloatArray,
) -> Face:
    face = Face(
        photo_id=photo.id,
        box=box,
        landmarks=landmarks,
        det_score=det_score,
        model_pack=model_pack,
        embedding=np.asarray(embedding, dtype=np.float32).tobytes(),
    )
    session.add(face)
    return face


@dataclass(frozen=True)
class MemberRow:
    id: int
    slug: str
    name: str
    group: str
    active: bool
    meta: dict[str, Any]
    photo_count: int
    cover_photo_id: int | None


def list_members(session: Session, group: str | None = None, *, member_id: int | None = None) -> list[MemberRow]:
    photos = (
        select(Photo.member_id, func.count(Photo.id).label("n"), func.min(Photo.id).label("cover"))
        .where(Photo.status.in_(USABLE_PHOTO))
        .group_by(Photo.member_id)
        .subquery()
    )
    query = (
        select(Member, Group.slug, photos.c.n, photos.c.cover)
        .join(Group, Member.group_id == Group.id)
        .outerjoin(photos, photos.c.member_id == Member.id)
        .order_by(Group.slug, Member.slug)
    )
    if group is not None:
        query = query.where(Group.slug == group)
    if member_id is not None:
        query = query.where(Member.id == member_id)
    return [
        MemberRow(m.id, m.slug, m.name, g, m.active, dict(m.meta or {}), int(n or 0), cover)
        for m, g, n, cover in session.execute(query)
    ]


def get_member(session: Session, member_id: int) -> MemberRow | None:
    rows = list_members(session, member_id=member_id)
    return rows[0] if rows else None


def member_photos(session: Session, member_id: int) -> list[Photo]:
    return list(
        session.scalars(
            select(Photo).where(Photo.member_id == member_id, Photo.status.in_(USABLE_PHOTO)).order_by(Photo.id)
        )
    )


def get_photo(session: Session, photo_id: int) -> Photo | None:
    return session.get(Photo, photo_id)


@dataclass(frozen=True)
class GalleryFaces:
    embeddings: FloatArray
    member_ids: IntArray
    photo_ids: IntArray
    members: list[Member]


def gallery_faces(session: Session, group: Group, model_pack: str) -> GalleryFaces:
    """The faces an index version of `group` is built from: usable photos of active members, one pack."""
    rows = session.execute(
        select(Face.embedding, Photo.member_id, Photo.id)
        .join(Photo, Face.photo_id == Photo.id)
        .join(Member, Photo.member_id == Member.id)
        .where(
            Member.group_id == group.id,
            Member.active.is_(True),
            Photo.status.in_(USABLE_PHOTO),
            Face.model_pack == model_pack,
        )
        .order_by(Face.id)
    ).all()
    members = list(session.scalars(select(Member).where(Member.group_id == group.id, Member.active.is_(True))))
    if not rows:
        return GalleryFaces(np.zeros((0, 0), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64), members)
    return GalleryFaces(
        embeddings=np.stack([np.frombuffer(r[0], dtype=np.float32) for r in rows]),
        member_ids=np.array([r[1] for r in rows], dtype=np.int64),
        photo_ids=np.array([r[2] for r in rows], dtype=np.int64),
        members=members,
    )


def new_index_version(session: Session, *, group: Group, model_pack: str) -> IndexVersion:
    """Reserve a version id; the row is filled in and activated once its files are written."""
    version = IndexVersion(
        group_id=group.id,
        model_pack=model_pack,
        n_faces=0,
        n_members=0,
        path="",
        sha256="",
        threshold=0.0,
        calibration={},
        active=False,
    )
    session.add(version)
    session.flush()
    return version


def activate_version(session: Session, version: IndexVersion) -> None:
    session.execute(
        update(IndexVersion)
        .where(IndexVersion.group_id == version.group_id, IndexVersion.id != version.id)
        .values(active=False)
    )
    version.active = True


def active_versions(session: Session, model_pack: str) -> dict[str, tuple[int, str]]:
    """group slug -> (version id, path) of each group's active version for this pack."""
    rows = session.execute(
        select(Group.slug, IndexVersion.id, IndexVersion.path)
        .join(IndexVersion, IndexVersion.group_id == Group.id)
        .where(IndexVersion.active.is_(True), IndexVersion.model_pack == model_pack)
    ).all()
    return {slug: (vid, path) for slug, vid, path in rows}


def active_version_rows(session: Session, model_pack: str) -> dict[int, IndexVersion]:
    """group id -> its active index version for this pack."""
    rows = session.scalars(
        select(IndexVersion).where(IndexVersion.active.is_(True), IndexVersion.model_pack == model_pack)
    )
    return {v.group_id: v for v in rows}


def list_groups(session: Session) -> list[Group]:
    return list(session.scalars(select(Group).order_by(Group.slug)))


def create_job(session: Session, *, job_id: str, kind: str, params: dict[str, Any]) -> Job:
    job = Job(id=job_id, kind=kind, params=params, status="queued", attempts=0)
    session.add(job)
    session.flush()
    return job


def start_job(session: Session, job_id: str) -> Job:
    job = session.get_one(Job, job_id)
    job.status = "running"
    job.attempts += 1
    job.started_at = utcnow()
    return job


def finish_job(
    session: Session,
    job_id: str,
    *,
    result: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> None:
    job = session.get_one(Job, job_id)
    job.status = "failed" if error is not None else "done"
    job.result = result
    job.error = error
    job.finished_at = utcnow()


def get_job(session: Session, job_id: str) -> Job | None:
    return session.get(Job, job_id)


def purge_jobs(session: Session, *, kind: str, finished_before: datetime) -> int:
    result = session.execute(
        delete(Job).where(Job.kind == kind, Job.finished_at.is_not(None), Job.finished_at < finished_before)
    )
    return int(getattr(result, "rowcount", 0) or 0)
