"""Every query the services make. Functions take a Session and never commit."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Row, delete, func, select, update
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
    face_ids: IntArray
    members: list[Member]


def gallery_faces(session: Session, group: Group, model_pack: str) -> GalleryFaces:
    """The faces an index version of `group` is built from: usable photos of active members, one pack."""
    rows = session.execute(
        select(Face.embedding, Photo.member_id, Photo.id, Face.id)
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
    members = list(
        session.scalars(select(Member).where(Member.group_id == group.id, Member.active.is_(True)).order_by(Member.id))
    )
    return _gallery_faces(rows, members)


def faces_by_ids(session: Session, face_ids: IntArray) -> GalleryFaces:
    """The faces of an index version, in the version's order (to rebuild it where its files are missing)."""
    rows = session.execute(
        select(Face.embedding, Photo.member_id, Photo.id, Face.id)
        .join(Photo, Face.photo_id == Photo.id)
        .where(Face.id.in_([int(i) for i in face_ids]))
    ).all()
    order = {int(f): i for i, f in enumerate(face_ids)}
    return _gallery_faces(sorted(rows, key=lambda r: order[r[3]]), [])


def _gallery_faces(rows: Sequence[Row[bytes, int, int, int]], members: list[Member]) -> GalleryFaces:
    if not rows:
        empty = np.zeros(0, np.int64)
        return GalleryFaces(np.zeros((0, 0), np.float32), empty, empty, empty, members)
    return GalleryFaces(
        embeddings=np.stack([np.frombuffer(r[0], dtype=np.float32) for r in rows]),
        member_ids=np.array([r[1] for r in rows], dtype=np.int64),
        photo_ids=np.array([r[2] for r in rows], dtype=np.int64),
        face_ids=np.array([r[3] for r in rows], dtype=np.int64),
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


@dataclass(frozen=True)
class ActiveVersion:
    id: int
    path: str
    sha256: str


def active_versions(session: Session, model_pack: str) -> dict[str, ActiveVersion]:
    """group slug -> the active index version of that group for this pack."""
    rows = session.execute(
        select(Group.slug, IndexVersion.id, IndexVersion.path, IndexVersion.sha256)
        .join(IndexVersion, IndexVersion.group_id == Group.id)
        .where(IndexVersion.active.is_(True), IndexVersion.model_pack == model_pack)
    ).all()
    return {slug: ActiveVersion(vid, path, digest) for slug, vid, path, digest in rows}


def active_version_rows(session: Session, model_pack: str) -> dict[int, IndexVersion]:
    """group id -> its active index version for this pack."""
    rows = session.scalars(
        select(IndexVersion).where(IndexVersion.active.is_(True), IndexVersion.model_pack == model_pack)
    )
    return {v.group_id: v for v in rows}


def list_groups(session: Session) -> list[Group]:
    return list(session.scalars(select(Group).order_by(Group.slug)))


def create_job(session: Session, *, job_id: str, kind: str, params: dict[str, Any], lock_key: str | None = None) -> Job:
    """Insert a queued job. With a lock key, raises IntegrityError while another live job holds it."""
    job = Job(id=job_id, kind=kind, params=params, status="queued", attempts=0, lock_key=lock_key)
    session.add(job)
    session.flush()
    return job


def claim_job(session: Session, job_id: str) -> Job | None:
    """Lock the job row for this delivery (Postgres row lock; SQLite serialises writers anyway)."""
    return session.get(Job, job_id, with_for_update=True)


def start_job(session: Session, job: Job) -> None:
    job.status = "running"
    job.attempts += 1
    job.started_at = utcnow()
    job.worker = f"{socket.gethostname()}:{os.getpid()}"


def finish_job(
    session: Session, job_id: str, *, result: dict[str, Any] | None = None, error: dict[str, Any] | None = None
) -> bool:
    """Write the outcome once: a job already done or failed keeps its first outcome. True if this call wrote."""
    written = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(("queued", "running")))
        .values(
            status="failed" if error is not None else "done",
            result=result,
            error=error,
            finished_at=utcnow(),
        )
    )
    return bool(getattr(written, "rowcount", 0))


def get_job(session: Session, job_id: str) -> Job | None:
    return session.get(Job, job_id)


def stale_jobs(session: Session, *, queued_before: datetime, running_before: datetime) -> list[Job]:
    """Jobs the broker may have lost: queued for too long, or running past any time limit."""
    return list(
        session.scalars(
            select(Job).where(
                ((Job.status == "queued") & (func.coalesce(Job.enqueued_at, Job.created_at) < queued_before))
                | ((Job.status == "running") & (Job.started_at < running_before))
            )
        )
    )


def mark_enqueued(session: Session, job_id: str) -> None:
    """Note that a message for the job was just sent (restarts the reconciler's clock for it)."""
    session.execute(update(Job).where(Job.id == job_id).values(enqueued_at=utcnow()))


def purge_jobs(session: Session, *, kind: str, finished_before: datetime) -> int:
    result = session.execute(
        delete(Job).where(Job.kind == kind, Job.finished_at.is_not(None), Job.finished_at < finished_before)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def queued_counts(session: Session) -> dict[str, int]:
    """Accepted jobs no worker has started yet, by kind: the depth of each queue."""
    rows = session.execute(select(Job.kind, func.count()).where(Job.status == "queued").group_by(Job.kind)).all()
    return {kind: int(n) for kind, n in rows}
