"""POST /diagnose: an uploaded photo in, every face with the members it resembles out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from lookalike.errors import InvalidParameter
from lookalike.schemas import DiagnoseResult, ErrorResponse
from services.gateway.deps import RuntimeDep

router = APIRouter(tags=["diagnose"])
SLUG = r"^[a-z0-9][a-z0-9_-]{0,63}$"
ERRORS: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        404: "unknown_group",
        409: "no_index: the gallery is not indexed yet",
        413: "upload_too_large, image_too_large",
        415: "not_an_image, unsupported_image_type",
        422: "no_face, corrupt_image, invalid_parameter",
    }.items()
}


@router.post("/diagnose", response_model=DiagnoseResult, responses=ERRORS)
async def diagnose(
    runtime: RuntimeDep,
    image: Annotated[UploadFile, File(description="JPEG, PNG, WebP or HEIC photo")],
    group: Annotated[str | None, Form(pattern=SLUG, description="Only this group's members")] = None,
) -> DiagnoseResult:
    limit = runtime.settings.max_upload_bytes
    data = await image.read(limit + 1)
    if len(data) > limit:
        raise InvalidParameter(f"the image is over {limit} bytes", code="upload_too_large", status=413)
    if not data:
        raise InvalidParameter("the image field is empty", code="not_an_image", status=415)
    return await runtime.runner.diagnose(data, group=group)
