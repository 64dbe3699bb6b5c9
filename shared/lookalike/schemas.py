"""The result schema, shared by the API, the CLI and (later) the Celery workers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field


def _utc(value: datetime) -> datetime:
    # SQLite hands datetimes back without their zone; every one stored is UTC, and RFC 3339 needs the offset.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


Timestamp = Annotated[datetime, AfterValidator(_utc)]


class MemberMatch(BaseModel):
    member_id: int
    slug: str
    name: str
    group: str
    similarity: float = Field(description="Cosine similarity of the face to the member (mean of best photos)")
    resemblance: float = Field(description="Calibrated resemblance in %, 50 at the match threshold")
    closest_photo_id: int
    photo_url: str


class Explanation(BaseModel):
    """Occlusion sensitivity of the similarity to the best member, over the aligned face (see pipeline/explain.py)."""

    member_id: int
    photo_id: int = Field(description="the member's photo closest to the face")
    similarity: float = Field(description="of the aligned face to the member (the member's score)")
    size: int = Field(description="the aligned face is size x size pixels")
    cell: int = Field(description="grid cell size in pixels of the aligned face")
    grid: list[list[float]] = Field(
        description="(size/cell)^2 cells, row-major: similarity lost when the cell is hidden; > 0 raises resemblance"
    )
    transform: list[list[float]] = Field(
        description="2x3 affine from the uploaded photo's pixels (EXIF-upright) to the aligned face's pixels"
    )


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
    warnings: list[str] = Field(
        default_factory=list,
        description="hard to judge: small_face (few pixels), blurred, turned (far from frontal)",
    )
    matches: list[MemberMatch]
    explanation: Explanation | None = Field(default=None, description="with explain=true, for the largest faces")


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
