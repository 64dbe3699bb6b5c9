"""Face detection with SCRFD (insightface's detector, pipeline/scrfd.py), plus the retries that find hard faces.

SCRFD sees the photo at two scales: 640 for ordinary photos and 128 for tight crops where the face fills the
frame. When a photo shows only small faces (a crowd), a larger pass finds the ones 640 pixels cannot resolve.
When nothing is found at all, padded and rotated copies are tried (tilted selfies beat upright detectors) and
their boxes are mapped back to the original photo. SCRFD also "finds" many sideways and upside-down faces, at a
low score and with the landmarks of an upright face (an alignment that embeds nonsense), so a weak find is checked
against quarter and half turns, and a clearly better orientation wins.

The work spent follows the photo. Every pass runs on an input of the picture's own shape (not a letterboxed
square: a 4:3 photo costs three quarters of one). A first pass at quick_size (a quarter of the pixels of 640)
settles photos whose faces are all large and clear (portraits, selfies); any other photo gets the full pass as
before. A weak find's orientation is checked on a small crop around it, and only an orientation that wins there
is run on the whole photo.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from lookalike.models.sessions import create_session
from lookalike.pipeline.scrfd import Candidates, Scrfd, UInt8Image
from lookalike.pipeline.types import Detection, FloatArray

TIGHT_CROP_SIZE = 128
SCRFD_STRIDE = 32
# Faces narrower than this at the primary scale are close to SCRFD's smallest anchor: look again, larger.
SMALL_FACE_PX = 32
# In-plane rotations tried when the upright photo shows no face; the best-scoring one wins.
RETRY_ANGLES = (30.0, -30.0, 90.0, -90.0, 180.0)
# Upright finds scoring below this are checked against the other orientations; one of those must beat the
# upright score by ORIENTATION_MARGIN to replace it (an upright face scores ~0.8-0.9 upright, 0.5-0.75 turned).
CONFIDENT_SCORE = 0.8
ORIENTATION_MARGIN = 0.05
ORIENTATION_ANGLES = (90.0, -90.0, 180.0)
# The quick pass settles a photo when every face it finds is at least this large at its scale and scores at least
# QUICK_CONFIDENT_SCORE: such faces are found and placed as the 640 pass places them (box IoU >= 0.9 on 99% of the
# team's face set; weaker or smaller finds were placed 10-12% differently, or stood beside faces only 640 resolves).
QUICK_FACE_PX = 80
QUICK_CONFIDENT_SCORE = 0.85
# Candidates down to this score count against settling: a face at 0.3-0.5 at 320 may pass the threshold at 640.
QUICK_TRIGGER_SCORE = 0.3
# The orientation check's crop: the weak face's box side times this (context for the turned detector), resampled
# to ORIENTATION_CROP_PX, where the face is about half the crop as SCRFD sees most faces.
ORIENTATION_CONTEXT = 2.0
ORIENTATION_CROP_PX = 160


class FaceDetector:
    def __init__(
        self,
        model_path: Path,
        *,
        providers: Sequence[str],
        threads: int,
        det_size: int = 640,
        large_size: int = 1280,
        quick_size: int = 320,
        threshold: float = 0.5,
    ) -> None:
        # One session for every input shape: inputs follow each picture's shape, and a static-shape session per
        # shape (insightface's default) would hold an arena of its own for each.
        self._scrfd = Scrfd(create_session(model_path, providers=providers, threads=threads), nms_threshold=0.4)
        self.det_size = det_size
        self.large_size = large_size
        # 0 (or det_size and above): no quick pass.
        self.quick_size = quick_size
        self.threshold = threshold

    def detect(self, rgb: UInt8Image, *, retry: bool = True) -> list[Detection]:
        h, w = rgb.shape[:2]
        if max(h, w) > min(h, w) * TIGHT_CROP_SIZE:
            # SCRFD letterboxes into TIGHT_CROP_SIZE squares, where a sliver this thin gets a zero-pixel side that
            # OpenCV refuses; it is far too thin to hold a face anyway.
            return []
        found = self._detect_upright(rgb)
        if not retry:
            return found
        if found:
            return self._reorient(rgb, found)
        return self._detect_transformed(rgb)

    def _reorient(self, rgb: UInt8Image, found: list[Detection]) -> list[Detection]:
        """`found`, or the faces of a quarter/half turn of `rgb` (mapped back) when those score clearly better."""
        strongest = max(found, key=lambda d: d.score)
        best = strongest.score
        if best >= CONFIDENT_SCORE:
            return found
        angle = self._turn_on_crop(rgb, strongest)
        if angle is None:
            return found
        # Turn a copy already at the detector's size: turning a 12-megapixel photo costs more than detecting.
        small, factor = _shrink(rgb, self.det_size)
        rotated, inverse = _rotate(small, angle)
        turned = self._detect_at(rotated, self.det_size)
        if max((d.score for d in turned), default=0.0) >= best + ORIENTATION_MARGIN:
            return [_apply_affine(d, inverse).scaled(1.0 / factor) for d in turned]
        return found

    def _turn_on_crop(self, rgb: UInt8Image, face: Detection) -> float | None:
        """The quarter or half turn under which the face scores clearly better than upright, judged on a small
        crop around it (a sixteenth of the pixels of a 640 pass per turn), or None."""
        side = ORIENTATION_CONTEXT * max(face.width, face.height)
        scale = ORIENTATION_CROP_PX / max(side, 1.0)
        cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
        half = ORIENTATION_CROP_PX / 2
        to_crop = np.array([[scale, 0.0, half - cx * scale], [0.0, scale, half - cy * scale]], dtype=np.float32)
        flags = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
        size = (ORIENTATION_CROP_PX, ORIENTATION_CROP_PX)
        crop = np.asarray(cv2.warpAffine(rgb, to_crop, size, flags=flags, borderValue=(0, 0, 0)), dtype=np.uint8)
        net = [size]
        upright = max((d.score for d in self._run(crop, net)), default=0.0)
        winner, winning = None, upright + ORIENTATION_MARGIN
        # np.rot90 turns counter-clockwise, as cv2's positive angles do.
        for angle, quarter_turns in zip(ORIENTATION_ANGLES, (1, 3, 2), strict=True):
            turned = np.ascontiguousarray(np.rot90(crop, quarter_turns))
            top = max((d.score for d in self._run(turned, net)), default=0.0)
            if top >= winning:
                winner, winning = angle, top
        return winner

    def _run(self, rgb: UInt8Image, sizes: list[tuple[int, int]], threshold: float | None = None) -> list[Detection]:
        thresh = self.threshold if threshold is None else threshold
        return self._select([self._candidates(rgb, size, thresh) for size in sizes])

    def _candidates(self, rgb: UInt8Image, size: tuple[int, int], threshold: float) -> Candidates:
        """One SCRFD pass: every box scoring `threshold` or more (before suppression), best first."""
        return self._scrfd.candidates(rgb, size, threshold)

    def _select(self, passes: list[Candidates]) -> list[Detection]:
        """The faces of several passes: their candidates pooled and suppressed as insightface's SCRFD.detect does."""
        boxes = np.vstack([b for b, _ in passes])
        kps = np.vstack([k for _, k in passes])
        order = np.argsort(-boxes[:, 4], kind="stable")
        boxes, kps = boxes[order], kps[order]
        keep = self._scrfd.suppress(boxes) if len(boxes) else []
        return [
            Detection(
                box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                score=float(b[4]),
                landmarks=np.asarray(k, dtype=np.float32),
            )
            for b, k in zip(boxes[keep], kps[keep], strict=True)
        ]

    def _detect_at(
        self, rgb: UInt8Image, side: int, *, threshold: float | None = None, tight: Candidates | None = None
    ) -> list[Detection]:
        """Detect with the picture's longest side at `side`, plus the tight-crop pass of a copy at `side` (`tight`:
        its candidates in `rgb` coordinates, where the caller has them already), boxes in `rgb` coordinates."""
        thresh = self.threshold if threshold is None else threshold
        small, factor = _shrink(rgb, side)
        h, w = small.shape[:2]
        # The input keeps the picture's shape, each side a multiple of SCRFD's largest stride (any other size
        # crashes in numpy); SCRFD scales the picture into it (up, for a photo smaller than `side`).
        fit = side / max(h, w)
        net = (_stride_multiple(w * fit), _stride_multiple(h * fit))
        tight_small = (
            self._candidates(small, (TIGHT_CROP_SIZE, TIGHT_CROP_SIZE), thresh)
            if tight is None
            else _scale(tight, factor)
        )
        found = self._select([self._candidates(small, net, thresh), tight_small])
        return [d.scaled(1.0 / factor) for d in found] if factor != 1.0 else found

    def _detect_upright(self, rgb: UInt8Image) -> list[Detection]:
        longest = max(rgb.shape[:2])
        # Both first passes start from one copy at the detector's size (shrinking a large photo twice costs more
        # than the quick pass itself), and share its tight-crop pass.
        small, factor = _shrink(rgb, self.det_size)
        quick = 0 < self.quick_size < self.det_size
        tight_threshold = min(self.threshold, QUICK_TRIGGER_SCORE) if quick else self.threshold
        tight = self._candidates(small, (TIGHT_CROP_SIZE, TIGHT_CROP_SIZE), tight_threshold)
        found = self._detect_quick(small, tight) if quick else None
        if found is None:
            above = tight[0][:, 4] >= self.threshold
            found = self._detect_at(small, self.det_size, tight=(tight[0][above], tight[1][above]))
        if factor != 1.0:
            found = [d.scaled(1.0 / factor) for d in found]
        if longest > self.det_size and needs_large_pass(found, longest, self.det_size):
            found = _merge(found, self._detect_at(rgb, min(self.large_size, longest)))
        return found

    def _detect_quick(self, rgb: UInt8Image, tight: Candidates) -> list[Detection] | None:
        """The faces of a pass at quick_size when they settle the photo (see QUICK_FACE_PX), else None. `tight`:
        the tight-crop pass's candidates in `rgb` (QUICK_TRIGGER_SCORE and up)."""
        least = QUICK_FACE_PX * max(rgb.shape[:2]) / self.quick_size  # QUICK_FACE_PX at the quick scale
        # A face large enough to settle the photo spans 32 px or more at 128, where the tight-crop pass sees it:
        # without one there, the quick pass would be spent in vain (nine East Asian photos in ten).
        boxes = tight[0]
        sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        if not np.any((boxes[:, 4] >= self.threshold) & (sides >= least)):
            return None
        found = self._detect_at(rgb, self.quick_size, threshold=QUICK_TRIGGER_SCORE, tight=tight)
        settled = all(d.score >= QUICK_CONFIDENT_SCORE and min(d.width, d.height) >= least for d in found)
        return found if found and settled else None

    def _detect_transformed(self, rgb: UInt8Image) -> list[Detection]:
        # Work on a copy at the detector's size (each pass shrinks to it anyway), boxes scaled back at the end.
        small, factor = _shrink(rgb, self.det_size)
        h, w = small.shape[:2]
        # Pad by a quarter on each side: a face cut by the frame edge gets context back.
        pad = max(h, w) // 4
        padded = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        found = self._detect_at(padded, self.det_size)
        if found:
            return [_translate(d, -pad, -pad, w, h).scaled(1.0 / factor) for d in self._reorient(padded, found)]
        # Every angle is tried and the best-scoring one wins: the first angle to find anything may have found an
        # upside-down face at a low score, with landmarks that do not lie on its eyes and mouth.
        best: list[Detection] = []
        best_score = 0.0
        for angle in RETRY_ANGLES:
            rotated, inverse = _rotate(padded, angle)
            found = self._detect_at(rotated, self.det_size)
            top = max((d.score for d in found), default=0.0)
            if top > best_score:
                best_score = top
                best = [_translate(_apply_affine(d, inverse), -pad, -pad, w, h).scaled(1.0 / factor) for d in found]
        return best


def needs_large_pass(found: Sequence[Detection], longest: float, det_size: int, margin: float = 1.0) -> bool:
    """Whether a face (in a photo whose longest side is `longest`) spans under SMALL_FACE_PX (times `margin`) with
    the photo at det_size, near SCRFD's smallest anchor: the rule for the large pass."""
    scale = min(1.0, det_size / longest)
    return any(min(d.width, d.height) * scale < SMALL_FACE_PX * margin for d in found)


def _scale(candidates: Candidates, factor: float) -> Candidates:
    boxes, kps = candidates
    if factor == 1.0:
        return candidates
    scaled = boxes.copy()
    scaled[:, :4] *= factor
    return scaled, kps * factor


def _stride_multiple(pixels: float) -> int:
    return max(1, -(-round(pixels) // SCRFD_STRIDE)) * SCRFD_STRIDE


def _shrink(rgb: UInt8Image, side: int) -> tuple[UInt8Image, float]:
    """A copy whose longest side is at most `side`, and the factor it was scaled by (1.0: `rgb` itself)."""
    h, w = rgb.shape[:2]
    factor = min(1.0, side / max(h, w))
    if factor == 1.0:
        return rgb, 1.0
    # interpolation must be named: the third positional argument of cv2.resize is `dst`, not the method.
    small = cv2.resize(rgb, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_AREA)
    return np.asarray(small, dtype=np.uint8), factor


def _merge(first: list[Detection], second: list[Detection], iou_limit: float = 0.4) -> list[Detection]:
    merged = sorted(first + second, key=lambda d: -d.score)
    kept: list[Detection] = []
    for d in merged:
        if all(_iou(d, k) < iou_limit for k in kept):
            kept.append(d)
    return kept


def _iou(a: Detection, b: Detection) -> float:
    x1, y1 = max(a.box[0], b.box[0]), max(a.box[1], b.box[1])
    x2, y2 = min(a.box[2], b.box[2]), min(a.box[3], b.box[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


def _rotate(rgb: UInt8Image, angle: float) -> tuple[UInt8Image, FloatArray]:
    """Rotate about the centre on a canvas big enough to keep every pixel; returns the image and the
    2x3 affine that maps rotated coordinates back to `rgb`."""
    h, w = rgb.shape[:2]
    forward = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = abs(forward[0, 0]), abs(forward[0, 1])
    nw, nh = int(h * sin + w * cos), int(h * cos + w * sin)
    forward[0, 2] += nw / 2 - w / 2
    forward[1, 2] += nh / 2 - h / 2
    rotated = cv2.warpAffine(rgb, forward, (nw, nh), borderValue=(0, 0, 0))
    return np.asarray(rotated, dtype=np.uint8), cv2.invertAffineTransform(forward).astype(np.float32)


def _apply_affine(d: Detection, m: FloatArray) -> Detection:
    x1, y1, x2, y2 = d.box
    corners = np.array([[x1, y1], [x2, y1], [x1, y2], [x2, y2]], dtype=np.float32)
    mapped = corners @ m[:, :2].T + m[:, 2]
    landmarks = d.landmarks @ m[:, :2].T + m[:, 2]
    return Detection(
        box=(
            float(mapped[:, 0].min()),
            float(mapped[:, 1].min()),
            float(mapped[:, 0].max()),
            float(mapped[:, 1].max()),
        ),
        score=d.score,
        landmarks=landmarks.astype(np.float32),
    )


def _translate(d: Detection, dx: float, dy: float, width: int, height: int) -> Detection:
    """Shift into the unpadded photo, clipping the box to its frame (landmarks may lie outside)."""
    x1, y1, x2, y2 = d.box
    return Detection(
        box=(
            min(max(x1 + dx, 0.0), width),
            min(max(y1 + dy, 0.0), height),
            min(max(x2 + dx, 0.0), width),
            min(max(y2 + dy, 0.0), height),
        ),
        score=d.score,
        landmarks=(d.landmarks + np.array([dx, dy], dtype=np.float32)).astype(np.float32),
    )
