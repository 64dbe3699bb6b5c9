"""The result schema, shared by the API, the CLI and (later) the Celery workers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class MemberMatch(BaseModel):
    member_id: int
    slug: str
    name: str
    group: str
    similarity: float = Field(description="Cosine similarity of the face to the member (mean of best photos)")
    resemblance: float = Field(description="Calibrated resemblance in %, 50 at the match threshold")
    closest_photo_id: int
    photo_url: str


class FaceResult(BaseModel):
    box: list[float] = Field(description="x1, y1, x2, y2 in pixels of the uploaded photo, EXIF-upright")
    det_score: float
    landmarks: list[list[float]]
    verdict: Literal["match", "no_match"]
    threshold: float | None = Field(description="Threshold of the group of the best member")
    margin: float | None = Field(description="Similarity of the best member minus the runner-up's")
    same_person_likely: bool = Field(
        description="Similarity in the gallery's same-person range: maybe the member themself"
    )
    warnings: list[str] = Field(default_factory=list)
    matches: list[MemberMatch]


class ImageInfo(BaseModel):
    width: int
    height: int
    format: str


class DiagnoseResult(BaseModel):
    faces: list[FaceResult]
    image: ImageInfo
    model_pack: str
    index_versions: dict[str, int]
    timings_ms: dict[str, float]


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody
