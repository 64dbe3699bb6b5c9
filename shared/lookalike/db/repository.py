"""Every query the services make. Functions take a Session and never commit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, Row, delete, func, select, update
from sqlalchemy.orm import Session, selectinload

from lookalike.db.models import Face, Group, IndexVersion, Job, Member, Photo, Source, utcnow

__all__ = ["Face", "Group", "IndexVersion", "Job", "Member", "Photo", "Source"]
from lookalike.index.scoring import IntArray
from lookalike.pipeline.types import Detection, FloatArray

USABLE_PHOTO = ("ok", "approved")


def get_group(session: Session, slug: str) -> Group | None:
    return session.scalar(select(Group).where(Group.slug == slug))


def group_with_photos(session: Session, slug: str) -> Group | None:
    """The group with every member's photos and their faces loaded in three queries (lazy loading costs two
    queries per photo when all of them are read)."""
    photos = selectinload(Group.members).selectinload(Member.photos).selectinload(Photo.faces)
    return session.scalar(select(Group).where(Group.slug == slug).options(photos))


def photos_with_faces(session: Session, photo_ids: Sequence[int]) -> list[Photo]:
    """These photos with their faces loaded, in two queries."""
    return list(session.scalars(select(Photo).where(Photo.id.in_(photo_ids)).options(selectinload(Photo.faces))))


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


def add_face(session: Session, *, photo: Photo, detection: Detection, model_pack: str, embedding: FloatArray) -> Face:
    """A face of `photo`, `detection` in the photo's own pixels."""
    face = Face(
        photo_id=photo.id,
        box=[float(v) for v in detection.box],
        landmarks=detection.landmarks.tolist(),
        det_score=detection.score,
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


def photos_without_pack(session: Session, group_slug: str, model_pack: str) -> list[Photo]:
    """Usable photos of the group's active members with no face of `model_pack` (their other faces loaded)."""
    has_face = select(Face.id).where(Face.photo_id == Photo.id, Face.model_pack == model_pack).exists()
    return list(
        session.scalars(
            select(Photo)
            .join(Member, Photo.member_id == Member.id)
            .join(Group, Member.group_id == Group.id)
            .where(Group.slug == group_slug, Member.active.is_(True), Photo.status.in_(USABLE_PHOTO), ~has_face)
            .options(selectinload(Photo.faces))
            .order_by(Photo.id)
        )
    )


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


def active_versions(db: Session | Connection, model_pack: str) -> dict[str, ActiveVersion]:
    """group slug -> the active index version of that group for this pack. Every diagnosis asks this: on a
    Connection it skips the ORM session's set-up and compilation."""
    rows = db.execute(
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


def set_progress(session: Session, job_id: str, counts: dict[str, Any]) -> None:
    session.execute(update(Job).where(Job.id == job_id).values(progress=counts))


def member_sources(session: Session, member_id: int) -> list[Source]:
    return list(session.scalars(select(Source).where(Source.member_id == member_id).order_by(Source.id)))


def mark_source_scraped(session: Session, source_id: int, *, error: str | None) -> None:
    session.execute(update(Source).where(Source.id == source_id).values(last_scraped_at=utcnow(), last_error=error))


def member_digests(session: Session, member_id: int) -> set[str]:
    """sha256 of every photo the member has, whatever its status."""
    return set(session.scalars(select(Photo.sha256).where(Photo.member_id == member_id)))


def member_phashes(session: Session, member_id: int) -> list[str]:
    """Perceptual hashes of every photo the member has, whatever its status (a rejected photo stays rejected)."""
    rows = session.scalars(select(Photo.phash).where(Photo.member_id == member_id, Photo.phash.is_not(None)))
    return [p for p in rows if p]


def impostor_faces(session: Session, group: Group, model_pack: str) -> FloatArray:
    """Embeddings of faces curation rejected as a stranger: people who are not in the group but were found on
    its pages, the strangers likeliest to look like the group's own.

    Not `other_member:<slug>` rejections: those faces are another member of the group, who scores like
    themself against the gallery (as high as a genuine pair) and would push the threshold above the members'
    own photos. Leave-one-member-out calibration already plays each member as a stranger to the others."""
    rows = session.scalars(
        select(Face.embedding)
        .join(Photo, Face.photo_id == Photo.id)
        .join(Member, Photo.member_id == Member.id)
        .where(
            Member.group_id == group.id,
            Photo.status == "rejected",
            Photo.reason == "wrong_person",
            Face.model_pack == model_pack,
        )
    ).all()
    if not rows:
        return np.zeros((0, 0), np.float32)
    return np.stack([np.frombuffer(r, dtype=np.float32) for r in rows])


# --------------------------------------------------------------------------- administration


def photo_counts(session: Session) -> dict[int, dict[str, int]]:
    """group id -> {photo status: count}."""
    rows = session.execute(
        select(Member.group_id, Photo.status, func.count(Photo.id))
        .join(Photo, Photo.member_id == Member.id)
        .group_by(Member.group_id, Photo.status)
    ).all()
    out: dict[int, dict[str, int]] = {}
    for group_id, status, n in rows:
        out.setdefault(group_id, {})[status] = int(n)
    return out


def group_member_photo_counts(session: Session, group_id: int) -> dict[int, dict[str, int]]:
    """member id -> {photo status: count}, for a group's members in one query."""
    rows = session.execute(
        select(Photo.member_id, Photo.status, func.count(Photo.id))
        .join(Member, Photo.member_id == Member.id)
        .where(Member.group_id == group_id)
        .group_by(Photo.member_id, Photo.status)
    ).all()
    out: dict[int, dict[str, int]] = {}
    for member_id, status, n in rows:
        out.setdefault(member_id, {})[status] = int(n)
    return out


def group_versions(session: Session, group_id: int, *, limit: int) -> list[IndexVersion]:
    """A group's index versions, newest first."""
    query = select(IndexVersion).where(IndexVersion.group_id == group_id).order_by(IndexVersion.id.desc())
    return list(session.scalars(query.limit(limit)))


def member_photo_counts(session: Session, member_id: int) -> dict[str, int]:
    """{photo status: count} of one member."""
    rows = session.execute(
        select(Photo.status, func.count(Photo.id)).where(Photo.member_id == member_id).group_by(Photo.status)
    ).all()
    return {status: int(n) for status, n in rows}


@dataclass
class DeletedRows:
    """What a deletion removed from the database, and the files (relative paths) that went with it."""

    members: int = 0
    photos: int = 0
    faces: int = 0
    sources: int = 0
    photo_paths: list[str] | None = None
    version_paths: list[str] | None = None


def _delete_members(session: Session, member_ids: list[int]) -> DeletedRows:
    """Faces, photos, sources and the members themselves, bottom-up (whatever the database's cascade does)."""
    if not member_ids:
        return DeletedRows(photo_paths=[])
    photo_ids = select(Photo.id).where(Photo.member_id.in_(member_ids))
    paths = list(session.scalars(select(Photo.path).where(Photo.member_id.in_(member_ids))))
    faces = session.execute(delete(Face).where(Face.photo_id.in_(photo_ids)))
    photos = session.execute(delete(Photo).where(Photo.member_id.in_(member_ids)))
    sources = session.execute(delete(Source).where(Source.member_id.in_(member_ids)))
    members = session.execute(delete(Member).where(Member.id.in_(member_ids)))
    session.expire_all()
    return DeletedRows(
        members=int(getattr(members, "rowcount", 0) or 0),
        photos=int(getattr(photos, "rowcount", 0) or 0),
        faces=int(getattr(faces, "rowcount", 0) or 0),
        sources=int(getattr(sources, "rowcount", 0) or 0),
        photo_paths=paths,
    )


def delete_member(session: Session, member_id: int) -> DeletedRows:
    return _delete_members(session, [member_id])


def delete_group(session: Session, group: Group) -> DeletedRows:
    """The group, its members and everything derived from them, index versions included."""
    member_ids = list(session.scalars(select(Member.id).where(Member.group_id == group.id)))
    deleted = _delete_members(session, member_ids)
    versions = list(session.scalars(select(IndexVersion.path).where(IndexVersion.group_id == group.id)))
    session.execute(delete(IndexVersion).where(IndexVersion.group_id == group.id))
    session.execute(delete(Group).where(Group.id == group.id))
    session.expire_all()
    deleted.version_paths = versions
    return deleted


def deactivate_versions(session: Session, group_id: int) -> int:
    """No version of the group is served any more (diagnoses of it answer no_index)."""
    result = session.execute(
        update(IndexVersion)
        .where(IndexVersion.group_id == group_id, IndexVersion.active.is_(True))
        .values(active=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def drop_member_versions(session: Session, group_id: int, member_id: int) -> list[str]:
    """Delete the inactive versions of the group that hold the member's faces (they list the member, or predate
    member lists); returns their paths. Active versions are never dropped here."""
    doomed = [
        v
        for v in session.scalars(
            select(IndexVersion).where(IndexVersion.group_id == group_id, IndexVersion.active.is_(False))
        )
        if v.members is None or any(int(m.get("id", -1)) == member_id for m in v.members)
    ]
    paths = [v.path for v in doomed]
    if doomed:
        session.execute(delete(IndexVersion).where(IndexVersion.id.in_([v.id for v in doomed])))
    return paths


def list_jobs(session: Session, *, kind: str | None = None, status: str | None = None, limit: int = 50) -> list[Job]:
    """Newest first."""
    query = select(Job).order_by(Job.created_at.desc(), Job.id).limit(limit)
    if kind is not None:
        query = query.where(Job.kind == kind)
    if status is not None:
        query = query.where(Job.status == status)
    return list(session.scalars(query))


def live_job(session: Session, lock_key: str) -> Job | None:
    """The queued or running job holding `lock_key`, if any."""
    return session.scalar(select(Job).where(Job.lock_key == lock_key, Job.status.in_(("queued", "running"))))


def get_source(session: Session, source_id: int) -> Source | None:
    return session.get(Source, source_id)


@dataclass(frozen=True)
class ReviewRow:
    photo: Photo
    member: Member
    group: str


def review_queue(session: Session, *, group: str | None = None, limit: int = 100) -> list[ReviewRow]:
    """Flagged photos, oldest first, with their member and the faces they kept."""
    query = (
        select(Photo, Member, Group.slug)
        .join(Member, Photo.member_id == Member.id)
        .join(Group, Member.group_id == Group.id)
        .where(Photo.status == "flagged")
        .order_by(Photo.id)
        .limit(limit)
    )
    if group is not None:
        query = query.where(Group.slug == group)
    return [ReviewRow(photo, member, slug) for photo, member, slug in session.execute(query)]


def review_photo(session: Session, photo: Photo, *, status: str, keep_face_id: int | None) -> None:
    """A human's decision: `approved` keeps one face (the member's), `excluded` keeps the photo out for good.
    The curation reason and score stay, for the record of why it was asked."""
    photo.status = status
    if keep_face_id is not None:
        session.execute(delete(Face).where(Face.photo_id == photo.id, Face.id != keep_face_id))
        session.expire(photo, ["faces"])


def photo_statuses(session: Session, photo_ids: Sequence[int]) -> dict[int, str]:
    rows = session.execute(select(Photo.id, Photo.status).where(Photo.id.in_([int(p) for p in photo_ids]))).all()
    return {int(pid): str(status) for pid, status in rows}


def flag_suspects(session: Session, flags: dict[int, tuple[str, float]]) -> None:
    """Send photos to the review queue: photo id -> (reason, score). Only photos nobody has decided on yet
    (status ok): a photo a human approved stays approved."""
    for photo_id, (reason, score) in flags.items():
        session.execute(
            update(Photo)
            .where(Photo.id == photo_id, Photo.status == "ok")
            .values(status="flagged", reason=reason[:100], score=score)
        )


def latest_crowd(session: Session, model_pack: str) -> bytes | None:
    """The reference crowd of the newest index version of this pack that has one (any group): a re-index without
    the models at hand (the gateway deleting a member) reuses it."""
    return session.scalar(
        select(IndexVersion.crowd)
        .where(IndexVersion.model_pack == model_pack, IndexVersion.crowd.is_not(None))
        .order_by(IndexVersion.id.desc())
        .limit(1)
    )
