"""The admin API under /admin (bearer token; see auth.py): groups, members, sources, uploads, scraping,
re-indexing, jobs and the review queue.

Long work runs as jobs on the ingestion worker (upload, scrape, reindex: 202 with the job to poll at
/admin/jobs/{id}). Two things happen inside the request instead: deleting a member (the next diagnosis must not
name them, so the group's new index version is active before the answer) and deleting a group.

Approving or rejecting photos changes what the group's index should hold: each decision queues a re-index of
the group unless one is queued already and not started (it will see the decision); a re-index already running
may have read the gallery before the decision, so the request waits for it and queues the next.
"""

from __future__ import annotations

import asyncio
import io
import re
import zipfile
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, File, Query, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, computed_field, model_validator
from sqlalchemy.orm import Session

from lookalike import admin
from lookalike.db import repository as repo
from lookalike.db.engine import session_scope
from lookalike.db.models import Group, Member
from lookalike.errors import InvalidParameter, LookalikeError, NotFound, UploadTooLarge
from lookalike.imaging import ImageFormat, sniff_format
from lookalike.jobs.functions import KINDS
from lookalike.schemas import ErrorBody, ErrorResponse, Timestamp
from services.gateway.auth import ADMIN_ERRORS, AdminRoute, require_admin
from services.gateway.deps import MAX_ROW_ID, RowId, RuntimeDep
from services.gateway.routes.diagnose import SLUG, JobAccepted
from services.gateway.routes.members import GroupOut

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    route_class=AdminRoute,
    dependencies=[Depends(require_admin)],
    responses=ADMIN_ERRORS,
)
JobStatus = Literal["queued", "running", "done", "failed"]
ReindexState = Literal["queued", "already_queued", "running"]
# A decision waits this long for a running re-index of its group before answering "running".
REINDEX_WAIT_S = 10.0
ZIP_MAGIC = b"PK\x03\x04"
_EXT = {ImageFormat.JPEG: ".jpg", ImageFormat.PNG: ".png", ImageFormat.WEBP: ".webp", ImageFormat.HEIF: ".heic"}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for a route's own error answers (401 and 403 come with the router)."""
    described = {
        400: "invalid_form: the body does not parse (JSON that is not UTF-8, malformed multipart)",
        404: "not_found, unknown_group: no such group, member, source, photo or job",
        409: "already_exists, job_conflict: the same thing exists, or the same job is live",
        413: "upload_too_large: over LOOKALIKE_MAX_UPLOAD_BYTES",
        415: "not_an_image, unsupported_image_type",
        422: "invalid_parameter, no_face: a bad field",
        501: "search_not_configured: no image search engine is registered",
    }
    return {s: {"model": ErrorResponse, "description": described[s]} for s in statuses}


# --------------------------------------------------------------------------- models


class GroupIn(BaseModel):
    slug: str = Field(pattern=SLUG)
    name: str = Field(min_length=1, max_length=200)


class GroupPatch(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class GroupAdminOut(GroupOut):
    photos: dict[str, int] = Field(description="photo count per status: ok, flagged, rejected, approved, ...")


class SuspectPairOut(BaseModel):
    """Member `member`'s photo `photo_id` scores `score` against member `other_member` (photo to photo: `similarity`
    with `other_photo_id`, that member's closest), and `own` against its own member."""

    photo_id: int
    member_id: int
    member: str
    other_photo_id: int
    other_member_id: int
    other_member: str
    similarity: float
    score: float
    own: float | None
    kind: Literal["wrong_member", "both"] = Field(
        description="wrong_member: looks more like the other member than its own; both: like both (one person "
        "under two names, twins)"
    )
    status: Literal["flagged", "approved"] = Field(
        description="flagged: sent to the review queue, left out of the version; approved: a reviewer kept it"
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def photo_url(self) -> str:
        return f"/admin/photos/{self.photo_id}/image"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def other_photo_url(self) -> str:
        return f"/admin/photos/{self.other_photo_id}/image"


class VersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    model_pack: str
    n_faces: int
    n_members: int
    threshold: float
    active: bool
    created_at: Timestamp
    calibration: dict[str, Any] = Field(
        description="threshold, target_fmr, genuine and impostor percentiles and counts, n_rejected, histogram "
        "{edges, genuine, impostor, lookalike} (similarity bins, and lookalike-score bins), the lookalike threshold "
        "and quantile, member scale, reference crowd, fitted tail (fields absent on versions built before them)"
    )

    @computed_field(description="lookalike threshold (on the lookalike score); null on versions built before it")  # type: ignore[prop-decorator]
    @property
    def lookalike_threshold(self) -> float | None:
        value = self.calibration.get("lookalike_threshold")
        return float(value) if value is not None else None

    @computed_field(description="90 % interval of the same_person threshold (bootstrap over members)")  # type: ignore[prop-decorator]
    @property
    def threshold_interval(self) -> list[float]:
        return list(self.calibration.get("threshold_interval", []))

    @computed_field(description="90 % interval of the lookalike threshold (bootstrap over members)")  # type: ignore[prop-decorator]
    @property
    def lookalike_interval(self) -> list[float]:
        return list(self.calibration.get("lookalike_interval", []))

    @computed_field(description="impostor scores the same_person threshold was fitted on")  # type: ignore[prop-decorator]
    @property
    def n_impostor(self) -> int:
        return int(self.calibration.get("n_impostor", 0))

    @computed_field(  # type: ignore[prop-decorator]
        description="photos that score like the same person against another member (suspected label errors): "
        "flagged ones wait in the review queue and are not in this version"
    )
    @property
    def suspect_pairs(self) -> list[SuspectPairOut]:
        return [SuspectPairOut.model_validate(p) for p in self.calibration.get("suspects", [])]


class DeletedOut(BaseModel):
    members: int
    photos: int
    faces: int
    sources: int
    files: int
    index_versions: int


class GroupDeleted(BaseModel):
    deleted: DeletedOut


class MemberIn(BaseModel):
    slug: str = Field(pattern=SLUG)
    name: str = Field(min_length=1, max_length=200)
    meta: dict[str, Any] = Field(default_factory=dict)


class MemberPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    active: StrictBool | None = None
    meta: dict[str, Any] | None = Field(default=None, description="replaces the member's meta as a whole")


class MemberAdminOut(BaseModel):
    id: int
    slug: str
    name: str
    group: str
    active: bool
    meta: dict[str, Any]
    photos: dict[str, int] = Field(description="photo count per status")


class MemberUpdated(MemberAdminOut):
    reindex: ReindexState | None = Field(description="the re-index a name or active change needs; null if none")
    reindex_job_id: str | None


class MemberDeleted(BaseModel):
    deleted: DeletedOut
    index_version: int | None = Field(description="the group's new active version; null: nothing of it is served")
    reindex_error: ErrorBody | None = None


class SourceIn(BaseModel):
    kind: str = Field(description="image_url, web_page, folder, zip or search")
    value: str = Field(min_length=1, max_length=2000, description="URL, path or query")
    options: dict[str, Any] = Field(default_factory=dict, description="per kind, e.g. web_page: depth, max_pages")


class SourceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    member_id: int
    kind: str
    value: str
    options: dict[str, Any]
    created_at: Timestamp
    last_scraped_at: Timestamp | None
    last_error: str | None


class ScrapeRequest(BaseModel):
    """Exactly one scope: one member, one group, or every active member."""

    member_id: int | None = Field(default=None, ge=1, le=MAX_ROW_ID)
    group: str | None = Field(default=None, pattern=SLUG)
    all: StrictBool = False

    @model_validator(mode="after")
    def _one_scope(self) -> ScrapeRequest:
        if (self.member_id is not None) + (self.group is not None) + self.all != 1:
            raise ValueError("give exactly one of member_id, group or all: true")
        return self


class ReindexRequest(BaseModel):
    group: str = Field(pattern=SLUG)


class AdminJobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    status: str
    attempts: int
    worker: str | None
    params: dict[str, Any]
    progress: dict[str, Any] | None = Field(
        description="counts per stage (scrape, upload): as it runs, and where it ended once finished"
    )
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None


class FaceOut(BaseModel):
    id: int
    box: list[float]
    det_score: float


class ReviewItem(BaseModel):
    photo_id: int
    member_id: int
    member: str
    member_name: str
    group: str
    reason: str | None
    score: float | None
    url: str = Field(description="the picture (admin only)")
    box: list[float] | None = Field(description="the face curation judged; null when it could not tell")
    faces: list[FaceOut]
    width: int
    height: int
    source_url: str | None
    page_url: str | None
    fetched_at: Timestamp | None


class ReviewDecision(BaseModel):
    face_id: int | None = Field(
        default=None, ge=1, le=MAX_ROW_ID, description="approve: the member's face when the photo shows several"
    )


class ReviewOutcome(BaseModel):
    photo_id: int
    status: str
    face_id: int | None
    reindex: ReindexState = Field(
        description="queued: a re-index of the group was queued; already_queued: one was waiting and will include "
        "this; running: one is still running after a wait and may predate this (POST /admin/reindex after it)"
    )
    reindex_job_id: str | None


# --------------------------------------------------------------------------- helpers


def accepted(job_id: str) -> JSONResponse:
    location = f"/admin/jobs/{job_id}"
    body = JobAccepted(job_id=job_id, status="queued", location=location)
    return JSONResponse(status_code=202, content=body.model_dump(), headers={"Location": location})


def _live_job(url: str, lock_key: str) -> tuple[str, str] | None:
    with session_scope(url) as session:
        job = repo.live_job(session, lock_key)
        return (job.id, job.status) if job is not None else None


async def queue_reindex(runtime: RuntimeDep, group: str) -> tuple[ReindexState, str | None]:
    """Make sure a re-index of the group starts after now, without two of them racing (see the module doc)."""
    key = f"reindex:{group}"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + REINDEX_WAIT_S
    while True:
        try:
            return "queued", await runtime.runner.submit("reindex", {"group": group}, lock_key=key)
        except LookalikeError as exc:
            if exc.code != "job_conflict":
                raise
        live = await asyncio.to_thread(_live_job, runtime.settings.sqlalchemy_url, key)
        if live is None:
            continue  # it ended between the two questions
        job_id, status = live
        if status == "queued":
            return "already_queued", job_id
        remaining = deadline - loop.time()
        if remaining <= 0:
            return "running", job_id
        await runtime.runner.wait(job_id, remaining)


def _member_admin(member: Member, group: str, photos: dict[str, int]) -> MemberAdminOut:
    return MemberAdminOut(
        id=member.id,
        slug=member.slug,
        name=member.name,
        group=group,
        active=member.active,
        meta=dict(member.meta or {}),
        photos=photos,
    )


def _member_out(url: str, member_id: int) -> MemberAdminOut:
    with session_scope(url) as session:
        member = session.get(Member, member_id)
        if member is None:
            raise NotFound(f"no member {member_id}")
        return _member_admin(member, member.group.slug, repo.member_photo_counts(session, member.id))


def _require_member(url: str, member_id: int, *, active: bool = False) -> str:
    with session_scope(url) as session:
        member = session.get(Member, member_id)
        if member is None or (active and not member.active):
            raise NotFound(f"no {'active ' if active else ''}member {member_id}")
        return member.group.slug


def _group(session: Session, slug: str) -> Group:
    group = repo.get_group(session, slug)
    if group is None:
        raise NotFound(f"no group {slug!r}", code="unknown_group")
    return group


def _require_group(url: str, slug: str) -> None:
    with session_scope(url) as session:
        _group(session, slug)


# --------------------------------------------------------------------------- groups


@router.post("/groups", status_code=201, response_model=GroupAdminOut, responses=errors(400, 409, 422))
def create_group(runtime: RuntimeDep, body: GroupIn) -> GroupAdminOut:
    admin.create_group(runtime.settings, body.slug, body.name)
    return GroupAdminOut(slug=body.slug, name=body.name, members=0, index_version=None, threshold=None, photos={})


@router.get("/groups", response_model=list[GroupAdminOut])
def list_groups(runtime: RuntimeDep) -> list[GroupAdminOut]:
    with session_scope(runtime.settings.sqlalchemy_url) as session:
        active = repo.active_version_rows(session, runtime.context.pipeline.pack_name)
        photos = repo.photo_counts(session)
        return [
            GroupAdminOut(**GroupOut.fields(g, active), photos=photos.get(g.id, {})) for g in repo.list_groups(session)
        ]


@router.get("/groups/{slug}/members", response_model=list[MemberAdminOut], responses=errors(404))
def group_members(runtime: RuntimeDep, slug: str) -> list[MemberAdminOut]:
    """The group's members (inactive ones too) with their photo counts per status."""
    with session_scope(runtime.settings.sqlalchemy_url) as session:
        group = _group(session, slug)
        counts = repo.group_member_photo_counts(session, group.id)
        return [_member_admin(m, slug, counts.get(m.id, {})) for m in sorted(group.members, key=lambda m: m.name)]


@router.get("/groups/{slug}/versions", response_model=list[VersionOut], responses=errors(404, 422))
def group_versions(runtime: RuntimeDep, slug: str, limit: Annotated[int, Query(ge=1, le=100)] = 10) -> list[VersionOut]:
    """The group's index versions, newest first, with the calibration each was published with."""
    with session_scope(runtime.settings.sqlalchemy_url) as session:
        versions = repo.group_versions(session, _group(session, slug).id, limit=limit)
        return [VersionOut.model_validate(v) for v in versions]


@router.patch("/groups/{slug}", response_model=GroupAdminOut, responses=errors(400, 404, 422))
def rename_group(runtime: RuntimeDep, slug: str, body: GroupPatch) -> GroupAdminOut:
    admin.rename_group(runtime.settings, slug, body.name)
    return next(g for g in list_groups(runtime) if g.slug == slug)


@router.delete("/groups/{slug}", response_model=GroupDeleted, responses=errors(404))
def delete_group(runtime: RuntimeDep, slug: str) -> GroupDeleted:
    deleted = admin.delete_group(runtime.settings, slug)
    return GroupDeleted(deleted=DeletedOut(**deleted.as_dict()))


# --------------------------------------------------------------------------- members


@router.post(
    "/groups/{slug}/members", status_code=201, response_model=MemberAdminOut, responses=errors(400, 404, 409, 422)
)
def create_member(runtime: RuntimeDep, slug: str, body: MemberIn) -> MemberAdminOut:
    member_id = admin.create_member(runtime.settings, slug, body.slug, body.name, body.meta)
    return _member_out(runtime.settings.sqlalchemy_url, member_id)


@router.get("/members/{member_id}", response_model=MemberAdminOut, responses=errors(404))
def get_member(runtime: RuntimeDep, member_id: RowId) -> MemberAdminOut:
    return _member_out(runtime.settings.sqlalchemy_url, member_id)


@router.patch("/members/{member_id}", response_model=MemberUpdated, responses=errors(400, 404, 422))
async def update_member(runtime: RuntimeDep, member_id: RowId, body: MemberPatch) -> MemberUpdated:
    group, stale = await asyncio.to_thread(
        admin.update_member, runtime.settings, member_id, name=body.name, active=body.active, meta=body.meta
    )
    state: ReindexState | None = None
    job_id: str | None = None
    if stale:
        state, job_id = await queue_reindex(runtime, group)
    out = await asyncio.to_thread(_member_out, runtime.settings.sqlalchemy_url, member_id)
    return MemberUpdated(**out.model_dump(), reindex=state, reindex_job_id=job_id)


@router.delete("/members/{member_id}", response_model=MemberDeleted, responses=errors(404))
async def delete_member(runtime: RuntimeDep, member_id: RowId) -> MemberDeleted:
    """Deletes the member, its photos (rows and files), faces and sources, and answers once the group's new
    index version is active (or the group's versions are deactivated when no usable face is left): the next
    diagnosis does not name the member. Older index versions holding its faces are dropped."""
    done = await asyncio.to_thread(
        admin.delete_member, runtime.settings, member_id, model_pack=runtime.context.pipeline.pack_name
    )
    error = ErrorBody(**done.reindex_error) if done.reindex_error else None
    return MemberDeleted(
        deleted=DeletedOut(**done.deleted.as_dict()), index_version=done.index_version, reindex_error=error
    )


# --------------------------------------------------------------------------- sources


@router.post(
    "/members/{member_id}/sources", status_code=201, response_model=SourceOut, responses=errors(400, 404, 422, 501)
)
def add_source(runtime: RuntimeDep, member_id: RowId, body: SourceIn) -> SourceOut:
    """Validated as the scraper will build it (an unknown kind or option is a 422); nothing is fetched yet."""
    settings = runtime.settings
    [source_id] = admin.add_sources(settings, member_id, [(body.kind, body.value, dict(body.options))])
    with session_scope(settings.sqlalchemy_url) as session:
        source = repo.get_source(session, source_id)
        assert source is not None
        return SourceOut.model_validate(source)


@router.get("/members/{member_id}/sources", response_model=list[SourceOut], responses=errors(404))
def list_sources(runtime: RuntimeDep, member_id: RowId) -> list[SourceOut]:
    url = runtime.settings.sqlalchemy_url
    _require_member(url, member_id)
    with session_scope(url) as session:
        return [SourceOut.model_validate(s) for s in repo.member_sources(session, member_id)]


@router.delete("/sources/{source_id}", status_code=204, response_class=Response, responses=errors(404))
def delete_source(runtime: RuntimeDep, source_id: RowId) -> Response:
    """The source goes; the photos it brought stay (delete them through review, or the member)."""
    admin.delete_source(runtime.settings, source_id)
    return Response(status_code=204)


# --------------------------------------------------------------------------- uploads, scraping, re-indexing


def _entry_name(index: int, filename: str, fmt: ImageFormat) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", filename.rsplit("/", 1)[-1].rsplit(".", 1)[0])[:60] or "photo"
    return f"{index:03d}-{stem}{_EXT[fmt]}"


def _pack(files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    """The job's bytes: one picture or one ZIP as sent; several pictures zipped (stored, they are compressed
    already) so that one job, one curation pass and one re-index take them all."""
    zips = [name for name, data in files if data.startswith(ZIP_MAGIC)]
    if zips and len(files) > 1:
        raise InvalidParameter("send one ZIP, or pictures, not both")
    if zips:
        return files[0][1], files[0][0] or "upload.zip"
    formats = []
    for name, data in files:
        try:
            formats.append(sniff_format(data))
        except LookalikeError as exc:
            raise type(exc)(f"{name or 'a file'}: {exc.message}") from None
    if len(files) == 1:
        return files[0][1], files[0][0] or "upload"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for i, ((name, data), fmt) in enumerate(zip(files, formats, strict=True), 1):
            archive.writestr(_entry_name(i, name, fmt), data)
    return buffer.getvalue(), "upload.zip"


@router.post(
    "/members/{member_id}/photos",
    status_code=202,
    response_model=JobAccepted,
    responses=errors(400, 404, 413, 415, 422),
)
async def upload_photos(
    runtime: RuntimeDep,
    member_id: RowId,
    files: Annotated[list[UploadFile], File(description="one or more JPEG, PNG, WebP or HEIC photos, or one ZIP")],
) -> JSONResponse:
    """Photos of the member, curated like scraped ones (kept, flagged or rejected) and published: a job."""
    settings = runtime.settings
    limit = settings.max_upload_bytes
    await asyncio.to_thread(_require_member, settings.sqlalchemy_url, member_id, active=True)
    received: list[tuple[str, bytes]] = []
    total = 0
    for upload in files:
        data = await upload.read(limit + 1)
        total += len(data)
        if total > limit:
            raise UploadTooLarge(f"the files are over {limit} bytes together")
        if not data:
            raise InvalidParameter(f"{upload.filename or 'a file'} is empty", code="not_an_image", status=415)
        received.append((upload.filename or "", data))
    if not received:
        raise InvalidParameter("no file in the files field")
    data, name = _pack(received)
    params = {"member_id": member_id, "name": name, "files": len(received)}
    return accepted(await runtime.runner.submit("upload", params, data=data))


@router.post("/scrape", status_code=202, response_model=JobAccepted, responses=errors(400, 404, 409, 422))
async def scrape(runtime: RuntimeDep, body: ScrapeRequest) -> JSONResponse:
    """Fetch, curate and publish the photos of one member's sources, of a group's, or of every active member's.
    One live scrape per scope (409 job_conflict)."""
    url = runtime.settings.sqlalchemy_url
    params: dict[str, Any]
    if body.member_id is not None:
        await asyncio.to_thread(_require_member, url, body.member_id, active=True)
        params, scope = {"member_id": body.member_id}, f"member:{body.member_id}"
    elif body.group is not None:
        await asyncio.to_thread(_require_group, url, body.group)
        params, scope = {"group": body.group}, f"group:{body.group}"
    else:
        params, scope = {"all": True}, "all"
    return accepted(await runtime.runner.submit("scrape", params, lock_key=f"scrape:{scope}"))


@router.post("/reindex", status_code=202, response_model=JobAccepted, responses=errors(400, 404, 409, 422))
async def reindex(runtime: RuntimeDep, body: ReindexRequest) -> JSONResponse:
    await asyncio.to_thread(_require_group, runtime.settings.sqlalchemy_url, body.group)
    return accepted(await runtime.runner.submit("reindex", {"group": body.group}, lock_key=f"reindex:{body.group}"))


# --------------------------------------------------------------------------- jobs


@router.get("/jobs", response_model=list[AdminJobOut], responses=errors(422))
def list_jobs(
    runtime: RuntimeDep,
    kind: Annotated[str | None, Query(description=f"one of {', '.join(KINDS)}")] = None,
    status: Annotated[JobStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[AdminJobOut]:
    """Newest first."""
    if kind is not None and kind not in KINDS:
        raise InvalidParameter(f"kind must be one of {', '.join(KINDS)}")
    with session_scope(runtime.settings.sqlalchemy_url) as session:
        return [AdminJobOut.model_validate(j) for j in repo.list_jobs(session, kind=kind, status=status, limit=limit)]


@router.get("/jobs/{job_id}", response_model=AdminJobOut, responses=errors(404))
def get_job(runtime: RuntimeDep, job_id: str) -> AdminJobOut:
    with session_scope(runtime.settings.sqlalchemy_url) as session:
        job = repo.get_job(session, job_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        return AdminJobOut.model_validate(job)


# --------------------------------------------------------------------------- review


@router.get("/review", response_model=list[ReviewItem], responses=errors(422))
def review_queue(
    runtime: RuntimeDep,
    group: Annotated[str | None, Query(pattern=SLUG)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ReviewItem]:
    """Flagged photos waiting for a human, oldest first."""
    with session_scope(runtime.settings.sqlalchemy_url) as session:
        items = []
        for row in repo.review_queue(session, group=group, limit=limit):
            photo = row.photo
            faces = [
                FaceOut(id=f.id, box=f.box, det_score=f.det_score) for f in sorted(photo.faces, key=lambda f: f.id)
            ]
            items.append(
                ReviewItem(
                    photo_id=photo.id,
                    member_id=row.member.id,
                    member=row.member.slug,
                    member_name=row.member.name,
                    group=row.group,
                    reason=photo.reason,
                    score=photo.score,
                    url=f"/admin/photos/{photo.id}/image",
                    box=faces[0].box if len(faces) == 1 else None,
                    faces=faces,
                    width=photo.width,
                    height=photo.height,
                    source_url=photo.source_url,
                    page_url=photo.page_url,
                    fetched_at=photo.fetched_at,
                )
            )
        return items


@router.get(
    "/photos/{photo_id}/image",
    response_class=FileResponse,
    responses={200: {"content": {"image/*": {}}}, **errors(404)},
)
def photo_image(runtime: RuntimeDep, photo_id: RowId) -> FileResponse:
    """Any photo whatever its status (the public member photo route serves kept ones only)."""
    root = runtime.settings.photo_dir.resolve()
    with session_scope(runtime.settings.sqlalchemy_url) as session:
        photo = repo.get_photo(session, photo_id)
        if photo is None:
            raise NotFound(f"no photo {photo_id}")
        path = (root / photo.path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise NotFound(f"photo {photo_id} is missing from storage")
    return FileResponse(path, headers={"Cache-Control": "private, no-store"})


async def _decide(runtime: RuntimeDep, photo_id: int, *, approve: bool, face_id: int | None) -> ReviewOutcome:
    done = await asyncio.to_thread(admin.review, runtime.settings, photo_id, approve=approve, face_id=face_id)
    state, job_id = await queue_reindex(runtime, done.group)
    return ReviewOutcome(
        photo_id=done.photo_id, status=done.status, face_id=done.face_id, reindex=state, reindex_job_id=job_id
    )


@router.post("/photos/{photo_id}/approve", response_model=ReviewOutcome, responses=errors(400, 404, 422))
async def approve_photo(
    runtime: RuntimeDep, photo_id: RowId, body: Annotated[ReviewDecision | None, Body()] = None
) -> ReviewOutcome:
    """The photo shows the member: status approved, the member's face kept (its only face, or `face_id`)."""
    return await _decide(runtime, photo_id, approve=True, face_id=body.face_id if body else None)


@router.post("/photos/{photo_id}/reject", response_model=ReviewOutcome, responses=errors(404))
async def reject_photo(runtime: RuntimeDep, photo_id: RowId) -> ReviewOutcome:
    """The photo does not belong in the gallery: status excluded, for good (a new scrape skips it)."""
    return await _decide(runtime, photo_id, approve=False, face_id=None)
