"""Gallery browsing: groups, members and their photos (sync handlers run in FastAPI's thread pool)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from lookalike.db import repository as repo
from lookalike.db.engine import session_scope
from lookalike.db.models import Group, IndexVersion
from lookalike.errors import NotFound
from lookalike.schemas import ErrorResponse
from services.gateway.deps import RowId, RuntimeDep

router = APIRouter(tags=["gallery"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse, "description": "not_found"}}


class MemberOut(BaseModel):
    id: int
    slug: str
    name: str
    group: str
    active: bool
    photo_count: int
    cover_url: str | None
    meta: dict[str, Any]


class PhotoOut(BaseModel):
    id: int
    url: str
    width: int
    height: int


class MemberDetail(MemberOut):
    photos: list[PhotoOut]


class GroupOut(BaseModel):
    slug: str
    name: str
    members: int
    index_version: int | None
    threshold: float | None = Field(description="same_person threshold of the active index version (similarity)")
    lookalike_threshold: float | None = Field(
        default=None, description="lookalike threshold of the active index version (lookalike score)"
    )

    @staticmethod
    def fields(group: Group, active: dict[int, IndexVersion]) -> dict[str, Any]:
        """A group's answer fields, given the active index version of each group (repo.active_version_rows)."""
        version = active.get(group.id)
        return {
            "slug": group.slug,
            "name": group.name,
            "members": len(group.members),
            "index_version": version.id if version else None,
            "threshold": version.threshold if version else None,
            "lookalike_threshold": version.calibration.get("lookalike_threshold") if version else None,
        }


def _member_out(row: repo.MemberRow) -> dict[str, Any]:
    cover = f"/members/{row.id}/photos/{row.cover_photo_id}" if row.cover_photo_id else None
    return {**row.__dict__, "cover_url": cover}


@router.get("/groups", response_model=list[GroupOut])
def list_groups(runtime: RuntimeDep) -> list[GroupOut]:
    with session_scope(runtime.settings.sqlalchemy_url) as session:
        active = repo.active_version_rows(session, runtime.context.pipeline.pack_name)
        return [GroupOut(**GroupOut.fields(g, active)) for g in repo.list_groups(session)]


@router.get("/members", response_model=list[MemberOut])
def list_members(
    runtime: RuntimeDep, group: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")] = None
) -> list[dict[str, Any]]:
    with session_scope(runtime.settings.sqlalchemy_url) as session:
        return [_member_out(r) for r in repo.list_members(session, group)]


@router.get("/members/{member_id}", response_model=MemberDetail, responses=NOT_FOUND)
def get_member(runtime: RuntimeDep, member_id: RowId) -> dict[str, Any]:
    with session_scope(runtime.settings.sqlalchemy_url) as session:
        row = repo.get_member(session, member_id)
        if row is None:
            raise NotFound(f"no member {member_id}")
        photos = [
            PhotoOut(id=p.id, url=f"/members/{member_id}/photos/{p.id}", width=p.width, height=p.height)
            for p in repo.member_photos(session, member_id)
        ]
        return {**_member_out(row), "photos": photos}


@router.get("/members/{member_id}/photos/{photo_id}", response_class=FileResponse, responses=NOT_FOUND)
def member_photo(runtime: RuntimeDep, member_id: RowId, photo_id: RowId) -> FileResponse:
    root = runtime.settings.photo_dir.resolve()
    with session_scope(runtime.settings.sqlalchemy_url) as session:
        photo = repo.get_photo(session, photo_id)
        if photo is None or photo.member_id != member_id or photo.status not in repo.USABLE_PHOTO:
            raise NotFound(f"no photo {photo_id} of member {member_id}")
        path = (root / photo.path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise NotFound(f"photo {photo_id} is missing from storage")
    return FileResponse(path, headers={"Cache-Control": "public, max-age=86400"})
