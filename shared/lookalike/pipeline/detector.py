"""Face detection with insightface's SCRFD, plus the retries that find hard faces.

SCRFD sees the photo at two scales: 640 for ordinary photos and 128 for tight crops where the face fills the
frame. When a photo shows only small faces (a crowd), a larger pass finds the ones 640 pixels cannot resolve.
When nothing is found at all, padded and rotated copies are tried (tilted selfies beat upright detectors) and
their boxes are mapped back to the original photo. SCRFD also "finds" many sideways and upside-down faces, at a
low score and with the landmarks of an upright face (an alignment that embeds nonsense), so a weak find is checked
against quarter and half turns of the photo, and a clearly better orientation wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from insightface.model_zoo.scrfd import SCRFD

from lookalike.models.sessions import create_session
from lookalike.pipeline.types import Detection, FloatArray

UInt8Image = npt.NDArray[np.uint8]

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


class FaceDetector:
    def __init__(
        self,
        model_path: Path,
        *,
        providers: Sequence[str],
        threads: int,
        det_size: int = 640,
        large_size: int = 1280,
        threshold: float = 0.5,
    ) -> None:
        session = create_session(model_path, providers=providers, threads=threads)
        self._scrfd = SCRFD(model_file=str(model_path), session=session)
        self._scrfd.nms_thresh = 0.4
        self.det_size = det_size
        self.large_size = large_size
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
        best = max(d.score for d in found)
        if best >= CONFIDENT_SCORE:
            return found
        # Turn a copy already at the detector's size: turning a 12-megapixel photo costs more than detecting.
        small, factor = _shrink(rgb, self.det_size)
        for angle in ORIENTATION_ANGLES:
            rotated, inverse = _rotate(small, angle)
            turned = self._detect_at(rotated, self.det_size)
            top = max((d.score for d in turned), default=0.0)
            if top >= best + ORIENTATION_MARGIN:
                best = top
                found = [_apply_affine(d, inverse).scaled(1.0 / factor) for d in turned]
        return found

    def _run(self, bgr: UInt8Image, sizes: list[tuple[int, int]]) -> list[Detection]:
        # Thread-safe: insightface guards its per-size session pool with a lock, ORT sessions run concurrently,
        # and its anchor cache only ever gains identical entries.
        boxes, kps = self._scrfd.detect(bgr, input_size=sizes, det_thresh=self.threshold)
        return [
            Detection(
                box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                score=float(b[4]),
                landmarks=np.asarray(k, dtype=np.float32),
            )
            for b, k in zip(boxes, kps, strict=True)
        ]

    def _detect_at(self, rgb: UInt8Image, side: int) -> list[Detection]:
        """Detect on a copy whose longest side is at most `side`, boxes in `rgb` coordinates."""
        small, factor = _shrink(rgb, side)
        bgr = np.ascontiguousarray(small[:, :, ::-1])
        # SCRFD's anchor grid needs an input that is a multiple of its largest stride (any other size crashes in
        # numpy); it fits the picture into that size itself.
        net = -(-side // SCRFD_STRIDE) * SCRFD_STRIDE
        found = self._run(bgr, [(net, net), (TIGHT_CROP_SIZE, TIGHT_CROP_SIZE)])
        return [d.scaled(1.0 / factor) for d in found] if factor != 1.0 else found

    def _detect_upright(self, rgb: UInt8Image) -> list[Detection]:
        found = self._detect_at(rgb, self.det_size)
        longest = max(rgb.shape[:2])
        scale_at_primary = min(1.0, self.det_size / longest)
        if longest > self.det_size and any(min(d.width, d.height) * scale_at_primary < SMALL_FACE_PX for d in found):
            found = _merge(found, self._detect_at(rgb, min(self.large_size, longest)))
        return found

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
