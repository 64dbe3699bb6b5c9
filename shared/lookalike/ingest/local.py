"""Ingest a folder laid out DIR/<member>/<photos>: dedupe, keep a copy, detect and embed the member's face."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lookalike.config import Settings
from lookalike.db import repository as repo
from lookalike.db.engine import session_scope
from lookalike.errors import ImageError
from lookalike.imaging import ImageFormat
from lookalike.pipeline.pipeline import Pipeline
from lookalike.pipeline.types import main_face

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif"}
EXTENSION = {
    ImageFormat.JPEG: ".jpg",
    ImageFormat.PNG: ".png",
    ImageFormat.WEBP: ".webp",
    ImageFormat.HEIF: ".heic",
}


@dataclass
class IngestReport:
    group: str
    members: int = 0
    photos_added: int = 0
    duplicates: int = 0
    no_face: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


def store_photo_file(
    settings: Settings, group: str, member: str, digest: str, image_format: ImageFormat, data: bytes
) -> str:
    """Keep the gallery photo's bytes under the photo dir; returns the path relative to it (what the row stores)."""
    target = settings.photo_dir / group / member / f"{digest[:16]}{EXTENSION[image_format]}"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return str(target.relative_to(settings.photo_dir))


def member_folders(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))


def photo_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _member_names(directory: Path) -> tuple[str | None, dict[str, dict[str, str]]]:
    """Optional DIR/group.json: {"name": ..., "members": [{"slug", "name", ...}]} for display names."""
    meta_file = directory / "group.json"
    if not meta_file.is_file():
        meta_file = directory.parent / "group.json"
    if not meta_file.is_file():
        return None, {}
    meta = json.loads(meta_file.read_text())
    return meta.get("name"), {m["slug"]: m for m in meta.get("members", [])}


def ingest_folder(
    settings: Settings,
    pipeline: Pipeline,
    directory: Path,
    *,
    group_slug: str,
    on_photo: Callable[[Path], None] | None = None,
) -> IngestReport:
    report = IngestReport(group=group_slug)
    group_name, names = _member_names(directory)
    pack = pipeline.pack_name
    url = settings.sqlalchemy_url
    with session_scope(url) as session:
        repo.ensure_group(session, group_slug, group_name)
    for folder in member_folders(directory):
        report.members += 1
        info = names.get(folder.name, {})
        extra = {k: v for k, v in info.items() if k not in ("slug", "name")}
        for path in photo_files(folder):
            _ingest_photo(settings, pipeline, path, group_slug, folder.name, info.get("name"), extra, pack, report)
            if on_photo is not None:
                on_photo(path)
    return report


def _ingest_photo(
    settings: Settings,
    pipeline: Pipeline,
    path: Path,
    group_slug: str,
    member_slug: str,
    member_name: str | None,
    meta: dict[str, str],
    pack: str,
    report: IngestReport,
) -> None:
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    with session_scope(settings.sqlalchemy_url) as session:
        group = repo.ensure_group(session, group_slug)
        member_id = repo.ensure_member(session, group, member_slug, member_name, **meta).id
        if repo.find_photo(session, member_id, digest) is not None:
            report.duplicates += 1
            return
    # The models run outside any transaction: SQLite would hold its write lock meanwhile.
    try:
        image, faces = pipeline.read(data)
    except ImageError as exc:
        log.warning("skipping %s: %s", path, exc.message)
        report.unreadable.append(str(path))
        return
    if not faces:
        report.no_face.append(str(path))
        return
    face = faces[main_face([f.detection for f in faces], *image.original_size)]
    stored = store_photo_file(settings, group_slug, member_slug, digest, image.format, data)
    with session_scope(settings.sqlalchemy_url) as session:
        member = session.get_one(repo.Member, member_id)
        photo = repo.add_photo(
            session,
            member=member,
            sha256=digest,
            path=stored,
            width=image.original_size[0],
            height=image.original_size[1],
            source_url=path.resolve().as_uri(),
        )
        repo.add_face(session, photo=photo, detection=face.detection, model_pack=pack, embedding=face.embedding)
    report.photos_added += 1
