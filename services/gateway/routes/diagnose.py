"""POST /diagnose: an uploaded photo in, every face with the members it resembles out."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from lookalike.config import MAX_PHOTOS_CAP
from lookalike.errors import ImageError, LookalikeError, NotAnImage, UploadTooLarge
from lookalike.imaging import sniff_format
from lookalike.jobs.functions import pack_photos
from lookalike.jobs.state import JobState
from lookalike.schemas import DiagnoseResult, ErrorResponse
from services.gateway.deps import RuntimeDep
from services.gateway.metrics import observe_result

router = APIRouter(tags=["diagnose"])
SLUG = r"^[a-z0-9][a-z0-9_-]{0,63}$"
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "invalid_form: malformed multipart, or too many fields",
        404: "unknown_group",
        409: "no_index: the gallery is not indexed yet",
        408: "upload_timeout: the body did not arrive within LOOKALIKE_UPLOAD_TIMEOUT_S",
        413: "upload_too_large (all photos together), image_too_large, too_many_photos (over LOOKALIKE_MAX_PHOTOS)",
        415: "not_an_image, unsupported_image_type",
        422: "no_face, corrupt_image, invalid_parameter, different_people (several photos: one shows someone else); "
        "errors about one of several photos name it in `photo`",
        429: "rate_limited, too_many_in_flight: over this client's allowance; see Retry-After",
        503: "queue_full (see Retry-After), broker_unavailable, database_unavailable, upload_lost",
    }.items()
}


class JobAccepted(BaseModel):
    job_id: str
    status: str
    location: str


def accepted(state: JobState) -> JSONResponse:
    location = f"/jobs/{state.id}"
    body = JobAccepted(job_id=state.id, status=state.status, location=location)
    return JSONResponse(status_code=202, content=body.model_dump(), headers={"Location": location})


def failure(state: JobState) -> LookalikeError:
    error = state.error or {}
    photo = error.get("photo")
    return LookalikeError(
        str(error.get("message", "the job failed")),
        code=str(error.get("code", "job_failed")),
        status=int(error.get("status", 500)),
        photo=int(photo) if photo is not None else None,
    )


@router.post(
    "/diagnose",
    response_model=DiagnoseResult,
    responses={202: {"model": JobAccepted, "description": "Accepted: poll the Location"}, **ERRORS},
    # Image parts (one photo, or up to LOOKALIKE_MAX_PHOTOS of one person) and a few small fields: the group slug,
    # plus room for what form libraries add. Without these, Starlette takes up to 1,000 files and 1,000 fields of
    # 1 MB each. More parts than MAX_PHOTOS_CAP stop the parser (413 too_many_photos, services/gateway/errors.py).
    form_limits={"max_files": MAX_PHOTOS_CAP, "max_fields": 4, "max_part_size": 1024},
)
async def diagnose(
    runtime: RuntimeDep,
    image: Annotated[
        list[UploadFile],
        File(
            description="JPEG, PNG, WebP or HEIC photo. Several `image` parts (up to LOOKALIKE_MAX_PHOTOS, default 5) "
            "are photos of one person: the answer is then about the person (one face, `boxes` per photo)"
        ),
    ],
    group: Annotated[str | None, Form(pattern=SLUG, description="Only this group's members")] = None,
    run_async: Annotated[
        bool, Query(alias="async", description="Answer 202 with the job id at once instead of waiting")
    ] = False,
    explain: Annotated[
        bool, Query(description="Add per face a heatmap of the regions that raise the similarity to the best member")
    ] = False,
) -> Any:
    settings = runtime.settings
    if len(image) > settings.max_photos:
        raise UploadTooLarge(
            f"{len(image)} photos: at most {settings.max_photos} of one person", code="too_many_photos"
        )
    limit = settings.max_upload_bytes
    photos: list[bytes] = []
    for number, part in enumerate(image, start=1):
        data = await part.read(limit - sum(map(len, photos)) + 1)
        photos.append(data)
        if sum(map(len, photos)) > limit:
            together = " together" if len(image) > 1 else ""
            raise UploadTooLarge(f"the photos are over {limit} bytes{together}")
        if not data:
            where = f"photo {number}" if len(image) > 1 else "the image field"
            raise NotAnImage(f"{where} is empty", photo=number if len(image) > 1 else None)
    # Each photo's magic bytes, before a job is made: what is no picture gets its 415 in both modes, as the worker's
    # decoder would give it, instead of a 202 and a job that can only fail. A loop of its own, after the sizes, so
    # that a body over the byte cap is refused 413 before anything in it is looked at.
    for number, data in enumerate(photos, start=1):
        try:
            sniff_format(data)
        except ImageError as exc:
            if len(photos) > 1:
                exc.about_photo(number, len(photos))
            raise
    data, sizes = pack_photos(photos)
    params: dict[str, Any] = {"group": group}
    if explain:
        params["explain"] = True
    if sizes:
        params["sizes"] = sizes
    job_id = await runtime.runner.submit("diagnose", params, data=data)
    state = await runtime.runner.wait(job_id, 0.0 if run_async else runtime.settings.diagnose_wait_s)
    assert state is not None  # the row was committed before submit returned
    # An async request is always a 202, even when a fast worker has already finished the job.
    if run_async or not state.finished:
        return accepted(state)
    if state.status == "failed":
        raise failure(state)
    result = DiagnoseResult.model_validate(state.result)
    observe_result(result, state)
    return result
