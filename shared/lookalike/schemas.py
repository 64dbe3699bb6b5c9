"""The result schema, shared by the API, the CLI and (later) the Celery workers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field


def _utc(value: datetime) -> datetime:
    # SQLite hands datetimes back without their zone; every one stored is UTC, and RFC 3339 needs the offset.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


Timestamp = Annotated[datetime, AfterValidator(_utc)]


Verdict = Literal["same_person", "lookalike", "no_match"]


class MemberMatch(BaseModel):
    member_id: int
    slug: str
    name: str
    group: str
    similarity: float = Field(description="Cosine similarity of the face to the member (mean of best photos)")
    score: float = Field(
        description="The similarity on the gallery's pooled scale: how far above the scores strangers usually get "
        "against this member (members with many photos or a common face draw high ones anyway); members are "
        "ranked by it"
    )
    lookalike_score: float = Field(
        description="score minus the face's score against its closest person of the reference crowd"
    )
    resemblance: float = Field(description="Calibrated resemblance in %: 50 at the lookalike threshold")
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


class Thresholds(BaseModel):
    same_person: float = Field(description="similarity the best member must reach for same_person")
    lookalike: float = Field(description="lookalike_score the best member must reach for lookalike")


class FaceResult(BaseModel):
    box: list[float] = Field(description="x1, y1, x2, y2 in pixels of the uploaded photo, EXIF-upright")
    boxes: list[list[float]] | None = Field(
        default=None,
        description="several photos of one person: the box of the main face in each photo, in the order sent",
    )
    det_score: float
    landmarks: list[list[float]]
    verdict: Verdict = Field(
        description="same_person: so close it could be the member; lookalike: resembles the member more than the "
        "gallery's own members resemble each other (a calibrated share of them); no_match: resembles nobody"
    )
    thresholds: Thresholds | None = Field(description="The calibrated thresholds of the best member's group")
    margin: float | None = Field(description="Score of the best member minus the runner-up's")
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
    image: ImageInfo = Field(description="the photo (the first one, when several were sent)")
    images: list[ImageInfo] | None = Field(default=None, description="several photos of one person: each of them")
    model_pack: str
    index_versions: dict[str, int]
    timings_ms: dict[str, float]


class ErrorBody(BaseModel):
    code: str
    message: str
    photo: int | None = Field(default=None, description="several photos sent: the one (1-based) the error is about")


class ErrorResponse(BaseModel):
    error: ErrorBody
