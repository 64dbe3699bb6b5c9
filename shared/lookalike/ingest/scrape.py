"""Scrape and upload jobs: sources -> fetch -> dedupe -> detect + embed -> curate -> calibrate -> publish.

Runs on the ingestion worker (distributed) or in the gateway's ingest thread (embedded), through the same job
functions. New photos are stored as `pending` with every face they show, so a delivery that dies half-way is
picked up by the next one; curation then decides each pending photo once: `ok` (kept, its member's face only),
`flagged` (waits for review) or `rejected` (with the reason). Every touched group gets a new index version.

Progress and results count per stage (candidates, stored, duplicates, unreadable, refused by reason, ok, flagged,
rejected by reason), per member as `<group>/<slug>` (slugs are unique within a group only) and in total.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select

from lookalike.config import Settings
from lookalike.context import JobContext
from lookalike.db import repository as repo
from lookalike.db.engine import session_scope
from lookalike.db.models import Face, Member, Photo, utcnow
from lookalike.errors import ImageError, InvalidParameter, LookalikeError, NotFound
from lookalike.imaging import DecodedImage
from lookalike.index.builder import BuiltVersion, reindex_group
from lookalike.index.crowd import EmbedCrops
from lookalike.index.writer_lock import ReindexRunning
from lookalike.ingest.curation import CandidateFace, CandidatePhoto, Decision, curate_group
from lookalike.ingest.dedupe import is_near_duplicate
from lookalike.ingest.fetcher import Fetcher, FetchPolicy, FetchRefused
from lookalike.ingest.local import store_photo_file
from lookalike.ingest.prepare import ordered_map, prepare, sha256
from lookalike.ingest.sources import ArchiveRefused, Candidate, ZipSource, source_from_spec
from lookalike.pipeline.quality import FaceQuality, assess_in_image
from lookalike.pipeline.types import FloatArray

log = logging.getLogger(__name__)
Progress = Callable[[dict[str, Any]], None]
# Refused downloads listed by URL in a member's counts (the counts by reason are complete).
MAX_LISTED_REFUSALS = 50
# Existing gallery photos vouch for their member in curation as if their face were of good quality.
TRUSTED = FaceQuality(size_px=112.0, sharpness=1.0, frontal=1.0, usable=True, reasons=())


@dataclass
class Counts:
    candidates: int = 0
    stored: int = 0
    duplicates: int = 0
    unreadable: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    decided: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    refusals: list[dict[str, str]] = field(default_factory=list)

    def refuse(self, url: str, reason: str) -> None:
        self.candidates += 1
        self.refused[reason] += 1
        if len(self.refusals) < MAX_LISTED_REFUSALS:
            self.refusals.append({"url": url, "reason": reason})

    def as_dict(self, *, listed: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "candidates": self.candidates,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "unreadable": self.unreadable,
            "refused": dict(self.refused),
            "ok": self.decided["ok"],
            "flagged": self.decided["flagged"],
            "rejected": self.decided["rejected"],
            "reasons": dict(self.reasons),
        }
        if listed:
            out["refusals"] = list(self.refusals)
        return out


def _totals(counts: dict[str, Counts]) -> dict[str, Any]:
    """The counts of every member added up (what a progress bar or a one-line summary shows)."""
    total = Counts()
    for c in counts.values():
        total.candidates += c.candidates
        total.stored += c.stored
        total.duplicates += c.duplicates
        total.unreadable += c.unreadable
        total.refused.update(c.refused)
        total.decided.update(c.decided)
        total.reasons.update(c.reasons)
    return total.as_dict(listed=False)


def _report(stage: str, members: list[MemberRef], done: int, counts: dict[str, Counts], **extra: Any) -> dict[str, Any]:
    """A job's progress: the stage, members done of the scope, and the counts per stage (total and per member)."""
    return {
        "stage": stage,
        "members_done": done,
        "members_total": len(members),
        **extra,
        "totals": _totals(counts),
        "members": {k: c.as_dict(listed=False) for k, c in counts.items()},
    }


@dataclass(frozen=True)
class MemberRef:
    id: int
    slug: str
    group: str

    @property
    def key(self) -> str:
        """How results name the member: slugs are unique within a group only."""
        return f"{self.group}/{self.slug}"


def fetch_policy(settings: Settings) -> FetchPolicy:
    return FetchPolicy(
        per_host_interval_s=settings.fetch_interval_s,
        deadline_s=settings.fetch_deadline_s,
        max_bytes=settings.max_upload_bytes,
        allow_private=frozenset(settings.fetch_allow),
    )


def _members_in_scope(settings: Settings, params: dict[str, Any]) -> list[MemberRef]:
    with session_scope(settings.sqlalchemy_url) as session:
        query = select(Member).where(Member.active.is_(True)).order_by(Member.id)
        if params.get("member_id") is not None:
            query = query.where(Member.id == int(params["member_id"]))
        elif params.get("group"):
            group = repo.get_group(session, str(params["group"]))
            if group is None:
                raise NotFound(f"no group {params['group']!r}", code="unknown_group")
            query = query.where(Member.group_id == group.id)
        members = [MemberRef(m.id, m.slug, m.group.slug) for m in session.scalars(query)]
    if params.get("member_id") is not None and not members:
        raise NotFound(f"no active member {params['member_id']}")
    return members


def scrape_job(ctx: JobContext, params: dict[str, Any], *, progress: Progress) -> dict[str, Any]:
    """params: member_id, or group, or neither (`all`: every active member)."""
    settings = ctx.settings
    members = _members_in_scope(settings, params)
    fetcher = Fetcher(fetch_policy(settings))
    counts = {m.key: Counts() for m in members}
    qualities: dict[int, tuple[FaceQuality, ...]] = {}
    for done, member in enumerate(members):
        with session_scope(settings.sqlalchemy_url) as session:
            sources = [(s.id, s.kind, s.value, dict(s.options or {})) for s in repo.member_sources(session, member.id)]

        def report(member: MemberRef = member, done: int = done) -> None:
            progress(_report("fetch", members, done, counts, member=member.key))

        for source_id, kind, value, options in sources:
            error: str | None = None
            try:
                source = source_from_spec(kind, value, **options)
                found = _fetched(source.candidates(fetcher), fetcher, counts[member.key], report)
                _collect(ctx, member, found, counts, report, qualities)
            except LookalikeError as exc:
                # One broken source (a dead page, a bad ZIP) must not cost the member's other sources.
                log.warning("source %s of %s failed: %s", source_id, member.key, exc.message)
                error = f"{exc.code}: {exc.message}"[:1000]
            with session_scope(settings.sqlalchemy_url) as session:
                repo.mark_source_scraped(session, source_id, error=error)
        progress(_report("fetch", members, done + 1, counts, member=member.key))
    return _finish(ctx, members, counts, progress, qualities)


def upload_job(ctx: JobContext, params: dict[str, Any], data: bytes, *, progress: Progress) -> dict[str, Any]:
    """params: member_id, name. `data`: one picture or a ZIP of pictures."""
    members = _members_in_scope(ctx.settings, {"member_id": params["member_id"]})
    counts = {m.key: Counts() for m in members}
    name = str(params.get("name") or "upload")
    candidates: Iterable[Candidate]
    if data[:4] == b"PK\x03\x04":
        try:
            candidates = list(ZipSource(data, name=name).candidates(Fetcher(fetch_policy(ctx.settings))))
        except ArchiveRefused as exc:
            raise InvalidParameter(f"{name}: {exc.message}") from exc
    else:
        candidates = [Candidate(url=f"upload:{name}", page_url=None, data=data)]
    qualities: dict[int, tuple[FaceQuality, ...]] = {}
    _collect(ctx, members[0], candidates, counts, lambda: progress(_report("store", members, 0, counts)), qualities)
    return _finish(ctx, members, counts, progress, qualities)


def _fetched(
    candidates: Iterable[Candidate], fetcher: Fetcher, counts: Counts, report: Callable[[], None]
) -> Iterable[Candidate]:
    """Download what is not loaded yet; refusals are counted by reason (and logged by the fetcher)."""
    for candidate in candidates:
        if candidate.data is not None:
            yield candidate
            continue
        try:
            image = fetcher.fetch_image(candidate.url, referer=candidate.page_url)
        except FetchRefused as exc:
            counts.refuse(candidate.url, exc.reason)
            report()
            continue
        yield Candidate(url=image.final_url, page_url=candidate.page_url, data=image.data)


def _collect(
    ctx: JobContext,
    member: MemberRef,
    candidates: Iterable[Candidate],
    all_counts: dict[str, Counts],
    report: Callable[[], None],
    qualities: dict[int, tuple[FaceQuality, ...]],
) -> None:
    """Store each new picture as a pending photo with all its faces; `qualities` gets each one's face quality
    (by photo id) so that curation need not decode it again."""
    settings, pipeline = ctx.settings, ctx.pipeline
    counts = all_counts[member.key]
    with session_scope(settings.sqlalchemy_url) as session:
        known = repo.member_phashes(session, member.id)
        digests = repo.member_digests(session, member.id)

    def new_pictures() -> Iterator[tuple[Candidate, str]]:
        for candidate in candidates:
            counts.candidates += 1
            assert candidate.data is not None
            digest = sha256(candidate.data)
            if digest in digests:
                counts.duplicates += 1
                report()
                continue
            digests.add(digest)
            yield candidate, digest

    for ready in ordered_map(lambda c: prepare(pipeline, *c), new_pictures(), workers=settings.workers):
        if ready.error is not None or ready.format is None:
            counts.unreadable += 1
            report()
            continue
        if is_near_duplicate(ready.phash, known):
            counts.duplicates += 1
            report()
            continue
        known.append(ready.phash)
        assert ready.candidate.data is not None
        stored = store_photo_file(settings, member.group, member.slug, ready.digest, ready.format, ready.candidate.data)
        with session_scope(settings.sqlalchemy_url) as session:
            photo = repo.add_photo(
                session,
                member=session.get_one(Member, member.id),
                sha256=ready.digest,
                path=stored,
                width=ready.size[0],
                height=ready.size[1],
                source_url=ready.candidate.url,
                fetched_at=utcnow(),
                status="pending",
            )
            photo.phash = ready.phash
            photo.page_url = ready.candidate.page_url
            for face in ready.faces:
                repo.add_face(
                    session,
                    photo=photo,
                    detection=face.detection,
                    model_pack=pipeline.pack_name,
                    embedding=face.embedding,
                )
            session.flush()
            qualities[photo.id] = ready.qualities
        counts.stored += 1
        report()


def _candidate(
    ctx: JobContext, photo: Photo, measured: tuple[FaceQuality, ...] | None
) -> tuple[CandidatePhoto, list[int]]:
    """A pending photo as curation sees it, and its face row ids. The faces' quality as this job measured it
    (`measured`, in face row order), or re-measured from the stored file (a photo an earlier delivery stored)."""
    rows = sorted(photo.faces, key=lambda f: f.id)
    image: DecodedImage | None = None
    if measured is None or len(measured) != len(rows):
        measured = None
        try:
            image = ctx.pipeline.decode((ctx.settings.photo_dir / photo.path).read_bytes())
        except (OSError, ImageError):
            log.warning("photo %s cannot be read back from storage", photo.id)
    faces = []
    for i, row in enumerate(rows):
        if measured is not None:
            quality = measured[i]
        else:
            quality = assess_in_image(image, _detection(row)) if image is not None else TRUSTED
        faces.append(CandidateFace(face_index=i, embedding=_embedding(row), quality=quality, det_score=row.det_score))
    return CandidatePhoto(key=f"photo:{photo.id}", faces=tuple(faces)), [r.id for r in rows]


def _detection(row: Face) -> Any:
    from lookalike.pipeline.types import Detection

    x1, y1, x2, y2 = row.box
    return Detection(box=(x1, y1, x2, y2), score=row.det_score, landmarks=np.asarray(row.landmarks, np.float32))


def _embedding(row: Face) -> FloatArray:
    return np.frombuffer(row.embedding, dtype=np.float32).copy()


def _finish(
    ctx: JobContext,
    members: list[MemberRef],
    counts: dict[str, Counts],
    progress: Progress,
    qualities: dict[int, tuple[FaceQuality, ...]],
) -> dict[str, Any]:
    settings = ctx.settings
    groups = sorted({m.group for m in members})
    versions: dict[str, Any] = {}
    for group in groups:
        progress(_report("curate", members, len(members), counts, group=group))
        _curate_group(ctx, group, counts, qualities)
        progress(_report("index", members, len(members), counts, group=group))
        try:
            built = reindex_when_free(
                settings, group, model_pack=ctx.pipeline.pack_name, embed=ctx.pipeline.embed_crops
            )
        except LookalikeError as exc:
            if exc.code != "empty_gallery":
                raise
            versions[group] = {"error": exc.to_dict()}
            continue
        versions[group] = {
            "version_id": built.version_id,
            "n_faces": built.n_faces,
            "n_members": built.n_members,
            "threshold": built.threshold,
            "lookalike_threshold": built.calibration.get("lookalike_threshold"),
            "suspect_pairs": built.suspect_pairs,
            "calibration": built.calibration,
        }
    progress(_report("done", members, len(members), counts))
    return {
        "totals": _totals(counts),
        "members": {k: c.as_dict() for k, c in counts.items()},
        "index_versions": versions,
    }


def reindex_when_free(
    settings: Settings, group: str, *, model_pack: str, timeout_s: float = 300.0, embed: EmbedCrops | None = None
) -> BuiltVersion:
    """Publish a new index version of the group, waiting while another writer (a re-index job, a member
    deletion) holds the group's writer lock: after a long scrape, losing the result to a short re-index that
    happened to run at the same moment would be a waste."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return reindex_group(settings, group, model_pack=model_pack, embed=embed)
        except ReindexRunning:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _curate_group(
    ctx: JobContext, group_slug: str, counts: dict[str, Counts], qualities: dict[int, tuple[FaceQuality, ...]]
) -> None:
    """Decide every pending photo of the group: each member's photos against the others' identities."""
    settings, pack = ctx.settings, ctx.pipeline.pack_name
    with session_scope(settings.sqlalchemy_url) as session:
        group = repo.group_with_photos(session, group_slug)
        assert group is not None
        candidates: dict[str, list[CandidatePhoto]] = {}
        face_rows: dict[str, tuple[int, list[int]]] = {}
        known: dict[str, FloatArray] = {}
        for member in group.members:
            if not member.active:
                continue
            pending = [p for p in member.photos if p.status == "pending"]
            trusted = [
                f for p in member.photos if p.status in repo.USABLE_PHOTO for f in p.faces if f.model_pack == pack
            ]
            if not pending:
                if trusted:
                    known[member.slug] = np.stack([_embedding(f) for f in trusted])
                continue
            photos = []
            for photo in pending:
                candidate, ids = _candidate(ctx, photo, qualities.get(photo.id))
                photos.append(candidate)
                face_rows[candidate.key] = (photo.id, ids)
            # The member's gallery photos vouch for them: a scrape adds to an identity it already knows.
            photos += [
                CandidatePhoto(key=f"trusted:{f.id}", faces=(CandidateFace(0, _embedding(f), TRUSTED, f.det_score),))
                for f in trusted
            ]
            candidates[member.slug] = photos
    if not candidates:
        return
    decisions = curate_group(candidates, known=known)
    with session_scope(settings.sqlalchemy_url) as session:
        decided = {p.id: p for p in repo.photos_with_faces(session, [photo_id for photo_id, _ in face_rows.values()])}
        for slug, member_decisions in decisions.items():
            for decision in member_decisions:
                if decision.key in face_rows:
                    photo_id, face_ids = face_rows[decision.key]
                    _apply(session, decision, decided[photo_id], face_ids)
                    # Pending photos of members outside the scope (left by a delivery that died) count too.
                    member_counts = counts.setdefault(f"{group_slug}/{slug}", Counts())
                    member_counts.decided[decision.status] += 1
                    if decision.status != "ok":
                        member_counts.reasons[decision.reason] += 1


def _apply(session: Any, decision: Decision, photo: Photo, face_ids: list[int]) -> None:
    """Record the decision; keep only the face it is about (the member's, or the one that was judged).

    A photo flagged without a judged face (too few photos to know the member yet, no consensus) keeps every
    face: the reviewer picks the member's when approving it."""
    photo.status = decision.status
    photo.reason = decision.reason
    photo.score = decision.score
    if decision.face_index is None and decision.status == "flagged":
        return
    keep = face_ids[decision.face_index] if decision.face_index is not None else None
    for face in list(photo.faces):
        if face.id != keep:
            session.delete(face)
