"""Gallery administration, shared by the admin API and the CLI: groups, members, sources, review, deletion.

Deleting a member removes everything derived from it: its photos (rows and files), faces, sources, and its
place in the index. A new version of the group is built and activated before the deletion returns (or, when no
usable face is left, the group's versions are deactivated), and every older version that still holds the
member's faces is dropped with its files. The registry checks the active version on every lookup, so the next
diagnosis no longer names the member, in every process.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError

from lookalike.config import Settings
from lookalike.db import repository as repo
from lookalike.db.engine import scrub_deleted, session_scope
from lookalike.db.models import Group, Member, Photo, Source
from lookalike.errors import InvalidParameter, LookalikeError, NotFound
from lookalike.ingest.sources import source_from_spec

log = logging.getLogger(__name__)
# How long a deletion waits for another writer of the group's index (a scrape publishing) before giving up.
REBUILD_WAIT_S = 120.0


class Conflict(LookalikeError):
    code = "already_exists"
    status = 409


@dataclass
class Deleted:
    members: int = 0
    photos: int = 0
    faces: int = 0
    sources: int = 0
    files: int = 0
    index_versions: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class MemberDeletion:
    deleted: Deleted
    group: str
    index_version: int | None  # the group's new active version, None when nothing of the group is served
    reindex_error: dict[str, str] | None  # why no version could be built (the group's versions were deactivated)


# --------------------------------------------------------------------------- files


def _inside(root: Path, relative: str) -> Path | None:
    """`root / relative`, when that is strictly inside `root` (never root itself, never outside)."""
    if not relative:
        return None
    base = root.resolve()
    path = (base / relative).resolve()
    return path if path != base and path.is_relative_to(base) else None


def remove_photo_files(settings: Settings, paths: list[str]) -> int:
    removed = 0
    for relative in paths:
        path = _inside(settings.photo_dir, relative)
        if path is None:
            log.warning("not removing photo path %r: outside the photo folder", relative)
            continue
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
        # The member's folder goes too once empty.
        parent = path.parent
        if parent != settings.photo_dir.resolve():
            with contextlib.suppress(OSError):
                parent.rmdir()
    return removed


def remove_version_files(settings: Settings, paths: list[str]) -> None:
    for relative in paths:
        path = _inside(settings.index_dir, relative)
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- groups and members


def create_group(settings: Settings, slug: str, name: str) -> None:
    try:
        with session_scope(settings.sqlalchemy_url) as session:
            if repo.get_group(session, slug) is not None:
                raise Conflict(f"group {slug!r} exists already")
            session.add(Group(slug=slug, name=name))
    except IntegrityError:
        raise Conflict(f"group {slug!r} exists already") from None


def rename_group(settings: Settings, slug: str, name: str) -> None:
    with session_scope(settings.sqlalchemy_url) as session:
        group = repo.get_group(session, slug)
        if group is None:
            raise NotFound(f"no group {slug!r}", code="unknown_group")
        group.name = name


def delete_group(settings: Settings, slug: str) -> Deleted:
    """The group and everything in it: members, photos and their files, faces, sources, index versions."""
    with session_scope(settings.sqlalchemy_url) as session:
        group = repo.get_group(session, slug)
        if group is None:
            raise NotFound(f"no group {slug!r}", code="unknown_group")
        rows = repo.delete_group(session, group)
    versions = rows.version_paths or []
    remove_version_files(settings, versions)
    files = remove_photo_files(settings, rows.photo_paths or [])
    _remove_empty(settings.photo_dir / slug)
    scrub_deleted(settings.sqlalchemy_url)
    log.info("group %s deleted: %d members, %d photos", slug, rows.members, rows.photos)
    return Deleted(rows.members, rows.photos, rows.faces, rows.sources, files, len(versions))


def _remove_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()


def create_member(settings: Settings, group_slug: str, slug: str, name: str, meta: dict[str, Any]) -> int:
    try:
        with session_scope(settings.sqlalchemy_url) as session:
            group = repo.get_group(session, group_slug)
            if group is None:
                raise NotFound(f"no group {group_slug!r}", code="unknown_group")
            member = Member(group_id=group.id, slug=slug, name=name, meta=meta, active=True)
            session.add(member)
            session.flush()
            return member.id
    except IntegrityError:
        raise Conflict(f"group {group_slug!r} has a member {slug!r} already") from None


def update_member(
    settings: Settings,
    member_id: int,
    *,
    name: str | None = None,
    active: bool | None = None,
    meta: dict[str, Any] | None = None,
) -> tuple[str, bool]:
    """Change a member; returns its group and whether the served index is now out of date (name or active
    changed: both are part of an index version)."""
    with session_scope(settings.sqlalchemy_url) as session:
        member = session.get(Member, member_id)
        if member is None:
            raise NotFound(f"no member {member_id}")
        stale = (name is not None and name != member.name) or (active is not None and active != member.active)
        if name is not None:
            member.name = name
        if active is not None:
            member.active = active
        if meta is not None:
            member.meta = meta
        return member.group.slug, stale


def delete_member(
    settings: Settings, member_id: int, *, model_pack: str, wait_s: float = REBUILD_WAIT_S
) -> MemberDeletion:
    """Delete the member and everything derived from it, and publish the group without it before returning."""
    from lookalike.ingest.scrape import reindex_when_free

    with session_scope(settings.sqlalchemy_url) as session:
        member = session.get(Member, member_id)
        if member is None:
            raise NotFound(f"no member {member_id}")
        group_id, group = member.group_id, member.group.slug
        rows = repo.delete_member(session, member_id)
    files = remove_photo_files(settings, rows.photo_paths or [])
    version_id: int | None = None
    error: dict[str, str] | None = None
    try:
        version_id = reindex_when_free(settings, group, model_pack=model_pack, timeout_s=wait_s).version_id
    except LookalikeError as exc:
        # Nothing usable is left (the last member went), or no version could be built in time: serve nothing
        # of the group rather than a version that still names the member.
        with session_scope(settings.sqlalchemy_url) as session:
            repo.deactivate_versions(session, group_id)
        if exc.code != "empty_gallery":
            log.error("group %s: no index version without member %s (%s); group deactivated", group, member_id, exc)
            error = exc.to_dict()
    with session_scope(settings.sqlalchemy_url) as session:
        dropped = repo.drop_member_versions(session, group_id, member_id)
    remove_version_files(settings, dropped)
    scrub_deleted(settings.sqlalchemy_url)
    log.info("member %s of %s deleted: %d photos, %d faces", member_id, group, rows.photos, rows.faces)
    deleted = Deleted(rows.members, rows.photos, rows.faces, rows.sources, files, len(dropped))
    return MemberDeletion(deleted, group, version_id, error)


# --------------------------------------------------------------------------- sources


def delete_source(settings: Settings, source_id: int) -> None:
    with session_scope(settings.sqlalchemy_url) as session:
        source = repo.get_source(session, source_id)
        if source is None:
            raise NotFound(f"no source {source_id}")
        session.delete(source)


# --------------------------------------------------------------------------- review


@dataclass(frozen=True)
class Reviewed:
    photo_id: int
    status: str
    member_id: int
    group: str
    face_id: int | None


def review(settings: Settings, photo_id: int, *, approve: bool, face_id: int | None = None) -> Reviewed:
    """A human's decision on a photo (flagged, or any other): approve it as the member (one face kept: the one
    named, or its only face) or exclude it for good. The group needs a re-index afterwards."""
    with session_scope(settings.sqlalchemy_url) as session:
        photo = session.get(Photo, photo_id)
        if photo is None:
            raise NotFound(f"no photo {photo_id}")
        keep: int | None = None
        if approve:
            faces = sorted(f.id for f in photo.faces)
            if face_id is not None:
                if face_id not in faces:
                    raise InvalidParameter(f"face {face_id} is not a face of photo {photo_id} (faces: {faces})")
                keep = face_id
            elif len(faces) == 1:
                keep = faces[0]
            elif not faces:
                raise InvalidParameter(f"photo {photo_id} has no face to approve", code="no_face")
            else:
                raise InvalidParameter(f"photo {photo_id} shows {len(faces)} faces; name the member's (face_id)")
        elif face_id is not None:
            raise InvalidParameter("face_id is for approving")
        repo.review_photo(session, photo, status="approved" if approve else "excluded", keep_face_id=keep)
        return Reviewed(photo.id, photo.status, photo.member_id, photo.member.group.slug, keep)


def add_sources(settings: Settings, member_id: int, specs: list[tuple[str, str, dict[str, Any]]]) -> list[int]:
    """Validate and store sources of a member (validation builds each source once, fetching nothing)."""
    for kind, value, options in specs:
        source_from_spec(kind, value, **options)
    with session_scope(settings.sqlalchemy_url) as session:
        if session.get(Member, member_id) is None:
            raise NotFound(f"no member {member_id}")
        rows = [Source(member_id=member_id, kind=k, value=v, options=o) for k, v, o in specs]
        session.add_all(rows)
        session.flush()
        return [r.id for r in rows]
