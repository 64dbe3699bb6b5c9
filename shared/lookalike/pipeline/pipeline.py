"""The one place the stage order lives: decode -> detect -> align -> embed -> match."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from lookalike.config import Settings
from lookalike.errors import DifferentPeople, LookalikeError, NoFace
from lookalike.imaging import DecodedImage, decode_image
from lookalike.index.gallery import GalleryIndex, MemberScore
from lookalike.models.pack import ModelPack
from lookalike.models.packs import resolve_pack, verify_pack
from lookalike.models.sessions import choose_providers
from lookalike.pipeline import quality
from lookalike.pipeline.aligner import ARCFACE_TEMPLATE, align, similarity_transform
from lookalike.pipeline.batcher import EmbedBatcher
from lookalike.pipeline.detector import FaceDetector, needs_large_pass
from lookalike.pipeline.embedder import Embedder, FaceEmbedder
from lookalike.pipeline.explain import CELL, occlusion_heatmap
from lookalike.pipeline.person import combine, odd_one_out
from lookalike.pipeline.scrfd import UInt8Image
from lookalike.pipeline.types import Detection, FloatArray, main_face
from lookalike.schemas import DiagnoseResult, Explanation, FaceResult, ImageInfo, MemberMatch, Thresholds

# The 112 px aligned crop maps a face box's short side onto 75-84 of its pixels (5th-95th percentile on the test
# photos): a box of 84 px or more is sampled at most one crop pixel per photo pixel, so more pixels add nothing.
DETAIL_PX = 84
# The first decode of a JPEG of 3840 px or more may stop this far below the detector's input (a 4000 px photo at 1/8
# is 500 px, upscaled for the 640 pass): libjpeg's 1/8 step costs two thirds of its 1/4 one, and faces large enough
# to need no large pass are found and placed the same (bench/cpu_per_photo.py's same-answers table).
COARSE_SIDE = 0.75


@dataclass(frozen=True)
class AnalyzedFace:
    detection: Detection  # in the coordinates of the original (full-size, upright) photo
    embedding: FloatArray
    crop: UInt8Image  # the aligned face the embedding came from


class Pipeline:
    """Loads its models lazily, once, under a lock; safe to share between worker threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._pack: ModelPack | None = None
        self._detector: FaceDetector | None = None
        self._embedder: Embedder | None = None
        # Set by the embedded runner: true while the photo at hand is the only job of the process. Photos analysed
        # then (and no other analysis running) use sessions with lone_threads threads (_sessions).
        self.alone: Callable[[], bool] | None = None
        self._wide: tuple[FaceDetector, Embedder] | None = None
        self._wide_decided = False  # whether load() has looked at lone_threads since `alone` was set
        self._cpu_only = True
        self._active = 0
        self._active_lock = threading.Lock()

    @property
    def pack(self) -> ModelPack:
        if self._pack is None:
            s = self.settings
            self._pack = resolve_pack(s.model_pack, model_root=s.model_root)
        return self._pack

    @property
    def pack_name(self) -> str:
        return self.pack.name

    @property
    def loaded(self) -> bool:
        return self._detector is not None and self._embedder is not None

    def lone_threads(self) -> int:
        """Threads of the wide sessions; 1 (no wide sessions) on a GPU, with dynamic batching or without a runner
        that can say when a photo is alone."""
        s = self.settings
        if self.alone is None or not self._cpu_only or s.batch_wait_ms > 0:
            return 1
        return s.lone_thread_count

    def load(self) -> tuple[FaceDetector, Embedder]:
        if self._detector is None or self._embedder is None or (self.alone is not None and not self._wide_decided):
            with self._lock:
                s = self.settings
                providers = choose_providers(s.providers)
                self._cpu_only = providers == ["CPUExecutionProvider"]
                if self._detector is None or self._embedder is None:
                    verify_pack(self.pack)
                    self._detector, embedder = self._build(providers, s.ort_threads)
                    self._embedder = (
                        EmbedBatcher(embedder, max_faces=s.embed_batch, wait_s=s.batch_wait_ms / 1000)
                        if s.batch_wait_ms > 0
                        else embedder
                    )
                wide = self.lone_threads()
                if self._wide is None and 1 <= s.ort_threads < wide:
                    self._wide = self._build(providers, wide)
                self._wide_decided = self.alone is not None
        assert self._detector is not None and self._embedder is not None
        return self._detector, self._embedder

    def _build(self, providers: list[str], threads: int) -> tuple[FaceDetector, FaceEmbedder]:
        s, pack = self.settings, self.pack
        detector = FaceDetector(
            pack.detector,
            providers=providers,
            threads=threads,
            det_size=s.det_size,
            large_size=s.large_det_size,
            quick_size=s.quick_det_size,
            threshold=s.det_threshold,
        )
        return detector, FaceEmbedder(pack.embedder, providers=providers, threads=threads, batch=s.embed_batch)

    @contextmanager
    def _sessions(self) -> Iterator[tuple[FaceDetector, Embedder]]:
        """The sessions for the analysis at hand: the wide ones when it is the only one running and the runner
        has nothing else queued (each worker's one thread under load; a 3rd thread on 2 cores would slow all)."""
        narrow = self.load()
        with self._active_lock:
            self._active += 1
            first = self._active == 1
        try:
            wide = self._wide if first and self._wide is not None and self.alone is not None and self.alone() else None
            yield wide or narrow
        finally:
            with self._active_lock:
                self._active -= 1

    def decode(self, data: bytes) -> DecodedImage:
        # Detection runs at det_size; twice that keeps enough pixels for small faces and for alignment.
        return decode_image(data, max_pixels=self.settings.max_pixels, max_side=2 * self.settings.large_det_size)

    def read(self, data: bytes, *, timings: dict[str, float] | None = None) -> tuple[DecodedImage, list[AnalyzedFace]]:
        """Decode and analyze, decoding only as many pixels as the faces need.

        A phone JPEG is first decoded by libjpeg at 1/2, 1/4 or 1/8 scale (no smaller than the detector's input, or
        COARSE_SIDE of it at 1/8): a 12-megapixel photo becomes 500 px. Where that copy is smaller than the
        detector's input and shows no face, or a face small enough to need the large pass, the photo is detected
        again from a copy at least the detector's size. When a face found is too small to align without the
        photo's own detail, the photo is decoded again just finely enough and the faces found are aligned and
        embedded from it (not detected again); when none is found, the whole analysis runs again at full detail,
        where the large pass can find small faces. Faces are embedded once, from the image they are aligned on.
        """
        t = time.perf_counter()
        s = self.settings
        coarse = round(s.det_size * COARSE_SIDE)
        image = decode_image(data, max_pixels=s.max_pixels, max_side=s.det_size, coarse_side=coarse)
        decode_s = time.perf_counter() - t
        found = self.detect(image, timings=timings)
        if (
            image.scale < 1.0
            and max(image.rgb.shape[:2]) < s.det_size
            # A margin for boxes placed on the coarse copy.
            and (not found or needs_large_pass(found, max(image.original_size), s.det_size, margin=1.25))
        ):
            t = time.perf_counter()
            image = decode_image(data, max_pixels=s.max_pixels, max_side=s.det_size)
            decode_s += time.perf_counter() - t
            found = self.detect(image, timings=timings)
        if image.scale < 1.0:
            smallest = min((min(d.width, d.height) for d in found), default=0.0)
            if not found:
                t = time.perf_counter()
                image = self.decode(data)
                decode_s += time.perf_counter() - t
                found = self.detect(image, timings=timings)
            elif smallest * image.scale < DETAIL_PX:
                # The coarsest libjpeg step (1/8, 1/4, 1/2, 1) that leaves the smallest face DETAIL_PX pixels.
                step = next((k for k in (8, 4, 2) if smallest / k >= DETAIL_PX), 1)
                t = time.perf_counter()
                longest = max(image.original_size)
                image = decode_image(data, max_pixels=s.max_pixels, max_side=max(1, longest // step))
                decode_s += time.perf_counter() - t
        if timings is not None:
            timings["decode"] = timings.get("decode", 0.0) + decode_s * 1000  # summed over the photos of a request
        return image, self.embed_found(image, found, timings=timings)

    def detect(self, image: DecodedImage, *, timings: dict[str, float] | None = None) -> list[Detection]:
        """Every face (at most max_faces, largest first), in the coordinates of the original photo."""
        with self._sessions() as (detector, _):
            t = time.perf_counter()
            found = detector.detect(image.rgb)
        found = sorted(found, key=lambda d: -d.width * d.height)[: self.settings.max_faces]
        if timings is not None:
            timings["detect"] = timings.get("detect", 0.0) + (time.perf_counter() - t) * 1000
        back = 1.0 / image.scale
        return [d.scaled(back) for d in found] if back != 1.0 else found

    def embed_found(
        self, image: DecodedImage, found: Sequence[Detection], *, timings: dict[str, float] | None = None
    ) -> list[AnalyzedFace]:
        """`found` (original-photo coordinates) aligned on `image` and embedded."""
        t = time.perf_counter()
        crops = [align(image.rgb, d.landmarks * image.scale) for d in found]
        t_align = time.perf_counter()
        with self._sessions() as (_, embedder):
            embeddings = embedder.embed(crops)
        if timings is not None:
            timings["align"] = timings.get("align", 0.0) + (t_align - t) * 1000
            timings["embed"] = timings.get("embed", 0.0) + (time.perf_counter() - t_align) * 1000
        return [AnalyzedFace(d, e, c) for d, e, c in zip(found, embeddings, crops, strict=True)]

    def analyze(self, image: DecodedImage, *, timings: dict[str, float] | None = None) -> list[AnalyzedFace]:
        """Detect, align and embed every face (at most max_faces, largest first)."""
        return self.embed_found(image, self.detect(image, timings=timings), timings=timings)

    def embed_crops(self, crops: Sequence[UInt8Image]) -> FloatArray:
        return self.load()[1].embed(crops)

    def diagnose(self, data: bytes, *, galleries: Sequence[GalleryIndex], explain: bool = False) -> DiagnoseResult:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        image, faces = self.read(data, timings=timings)
        if not faces:
            raise NoFace("no face was found in the photo")
        t_match = time.perf_counter()
        ranked = self.rank(np.stack([f.embedding for f in faces]), galleries)
        results = [self.face_result(f, scores, galleries) for f, scores in zip(faces, ranked, strict=True)]
        timings["match"] = (time.perf_counter() - t_match) * 1000
        if explain:
            self._explain_all(faces, ranked, results, galleries, timings)
        timings["total"] = (time.perf_counter() - t0) * 1000
        return self._result(results, [image], galleries, timings)

    def read_person(
        self, photos: Sequence[bytes], *, timings: dict[str, float] | None = None
    ) -> tuple[list[DecodedImage], list[AnalyzedFace]]:
        """The main face of each photo of one person; errors name the photo (1-based) they are about."""
        images, mains = [], []
        for number, data in enumerate(photos, start=1):
            where = f"photo {number} of {len(photos)}"
            try:
                image, faces = self.read(data, timings=timings)
            except LookalikeError as exc:
                exc.about_photo(number, len(photos))
                raise
            if not faces:
                raise NoFace(f"no face was found in {where}", photo=number)
            images.append(image)
            mains.append(faces[main_face([f.detection for f in faces], *image.original_size)])
        return images, mains

    def person_query(self, embeddings: FloatArray) -> FloatArray:
        """The combined query of one person's photos (their main faces' embeddings, in the order sent);
        DifferentPeople names a photo of someone else."""
        odd = odd_one_out(embeddings, min_similarity=self.settings.person_min_similarity)
        if odd is not None:
            number, similarity = odd[0] + 1, odd[1]
            raise DifferentPeople(
                f"photo {number} of {len(embeddings)} does not show the same person as the others "
                f"(similarity {similarity:.2f}, at least {self.settings.person_min_similarity} expected)",
                photo=number,
            )
        return combine(embeddings)

    def diagnose_person(
        self, photos: Sequence[bytes], *, galleries: Sequence[GalleryIndex], explain: bool = False
    ) -> DiagnoseResult:
        """Several photos of one person: one answer about the person, from their photos' main faces combined."""
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        images, mains = self.read_person(photos, timings=timings)
        t_match = time.perf_counter()
        query = self.person_query(np.stack([f.embedding for f in mains]))
        ranked = self.rank(query[None, :], galleries)
        person = AnalyzedFace(mains[0].detection, query, mains[0].crop)
        result = self.face_result(person, ranked[0], galleries, also=mains[1:])
        timings["match"] = (time.perf_counter() - t_match) * 1000
        if explain:
            # The heatmap is drawn on the first photo: occlusion needs one real crop.
            self._explain_all([mains[0]], ranked, [result], galleries, timings)
        timings["total"] = (time.perf_counter() - t0) * 1000
        return self._result([result], images, galleries, timings)

    def rank(self, queries: FloatArray, galleries: Sequence[GalleryIndex]) -> list[list[MemberScore]]:
        top = self.settings.top_members
        return merge_rankings([g.rank(queries, top=top) for g in galleries], top=top)

    def face_result(
        self,
        face: AnalyzedFace,
        scores: list[MemberScore],
        galleries: Sequence[GalleryIndex],
        *,
        also: Sequence[AnalyzedFace] = (),
    ) -> FaceResult:
        """`also`: the person's other photos (their boxes and warnings join the first photo's)."""
        by_group = {g.group: g for g in galleries}
        result = face_result(face, scores, by_group, min_face_px=self.settings.min_face_px)
        if also:
            others = [face_result(f, [], by_group, min_face_px=self.settings.min_face_px) for f in also]
            result.boxes = [result.box, *[o.box for o in others]]
            result.warnings = sorted({w for r in (result, *others) for w in r.warnings})
        return result

    def _explain_all(
        self,
        faces: Sequence[AnalyzedFace],
        ranked: list[list[MemberScore]],
        results: list[FaceResult],
        galleries: Sequence[GalleryIndex],
        timings: dict[str, float],
    ) -> None:
        t_explain = time.perf_counter()
        by_group = {g.group: g for g in galleries}
        limit = self.settings.explain_max_faces
        for face, scores, result in list(zip(faces, ranked, results, strict=True))[:limit]:
            if scores:
                result.explanation = self.explain(face, scores[0], by_group[scores[0].member.group])
        timings["explain"] = (time.perf_counter() - t_explain) * 1000

    def _result(
        self,
        results: list[FaceResult],
        images: Sequence[DecodedImage],
        galleries: Sequence[GalleryIndex],
        timings: dict[str, float],
    ) -> DiagnoseResult:
        infos = [ImageInfo(width=i.original_size[0], height=i.original_size[1], format=i.format.value) for i in images]
        return DiagnoseResult(
            faces=results,
            image=infos[0],
            images=infos if len(infos) > 1 else None,
            model_pack=self.pack_name,
            index_versions={g.group: g.version_id for g in galleries},
            timings_ms={k: round(v, 2) for k, v in timings.items()},
        )

    def explain(self, face: AnalyzedFace, best: MemberScore, gallery: GalleryIndex) -> Explanation:
        """Which regions of the face raise its similarity to the best member (pipeline/explain.py)."""
        target = gallery.member_target(face.embedding, best.member.id)
        with self._sessions() as (_, embedder):
            heat = occlusion_heatmap(embedder, face.crop, target)
        # Similarity transforms commute with scaling, so the photo's own landmarks give its crop's transform.
        matrix = similarity_transform(face.detection.landmarks, ARCFACE_TEMPLATE)
        return Explanation(
            member_id=best.member.id,
            photo_id=best.closest_photo_id,
            similarity=round(heat.similarity, 4),
            size=face.crop.shape[0],
            cell=CELL,
            grid=[[round(float(v), 4) for v in row] for row in heat.grid],
            transform=[[round(float(v), 6) for v in row] for row in matrix],
        )


def merge_rankings(per_gallery: list[list[list[MemberScore]]], *, top: int) -> list[list[MemberScore]]:
    """Per face, the members of all galleries ranked together by score."""
    if not per_gallery:
        return []
    merged: list[list[MemberScore]] = []
    for face_lists in zip(*per_gallery, strict=True):
        combined = [s for lst in face_lists for s in lst]
        merged.append(sorted(combined, key=lambda s: -s.score)[:top])
    return merged


def face_result(
    face: AnalyzedFace, scores: list[MemberScore], galleries: dict[str, GalleryIndex], *, min_face_px: int
) -> FaceResult:
    d = face.detection
    warnings = [
        name
        for name, hard in (
            ("small_face", min(d.width, d.height) < min_face_px),
            ("blurred", quality.sharpness(face.crop) < quality.MIN_SHARPNESS),
            ("turned", quality.frontality(d.landmarks) < quality.MIN_FRONTAL),
        )
        if hard
    ]
    best = scores[0] if scores else None
    calibration = galleries[best.member.group].calibration if best else None
    verdict = calibration.verdict(best.similarity, best.lookalike) if best and calibration else "no_match"
    return FaceResult(
        box=[round(v, 1) for v in d.box],
        det_score=round(d.score, 4),
        landmarks=[[round(float(x), 1), round(float(y), 1)] for x, y in d.landmarks],
        verdict=verdict,
        thresholds=(
            Thresholds(same_person=calibration.threshold, lookalike=calibration.lookalike_cut) if calibration else None
        ),
        margin=round(scores[0].score - scores[1].score, 4) if len(scores) > 1 else None,
        warnings=warnings,
        matches=[
            MemberMatch(
                member_id=s.member.id,
                slug=s.member.slug,
                name=s.member.name,
                group=s.member.group,
                similarity=s.similarity,
                score=s.score,
                lookalike_score=s.lookalike,
                resemblance=s.resemblance,
                closest_photo_id=s.closest_photo_id,
                photo_url=f"/members/{s.member.id}/photos/{s.closest_photo_id}",
            )
            for s in scores
        ],
    )
