"""Is a face good enough to be a gallery reference? Size, sharpness and pose, from the detection and the crop.

The thresholds were measured with buffalo_s on /work/shared/data/faces (normal photos: east_asian/ 250 faces,
gallery/ 609; hard cases: hard/). `python bench/curation_eval.py --derive` reprints every figure quoted here.

- MIN_FACE_PX = 40. Every face of 80 px or more (213 east_asian, 573 gallery) was shrunk with its photo
  until its short side was N px, then detected, aligned and embedded again. Similarity to the person's own
  centroid, 5th percentile east_asian / gallery: 0.52 / 0.56 at 64 px, 0.50 / 0.54 at 40 px (within 0.03),
  0.47 / 0.51 at 32 px, 0.40 / 0.47 at 26 px (east_asian down to the keep threshold of curation), 0.36 /
  0.42 at 22 px. Normal photos have faces of 44 px and up (1st percentile); hard/08 and 09 (26 px,
  full-body shots) fall below.
- MIN_SHARPNESS = 0.35. A Gaussian blur of the aligned crop costs little at sigma 1.5 px (5th percentile of
  the own-centroid similarity 0.49 -> 0.45 on east_asian, 0.55 -> 0.49 on gallery), much at sigma 2.25
  (-> 0.36 / 0.40, the keep threshold) and ruins it at sigma 3 (-> 0.26 / 0.29, among strangers). The
  measure is 0.27 (median) and 0.33 (99th percentile) at sigma 2.25, 0.37 (median) at sigma 1.5, and 0.42 or
  more on every normal photo: 0.35 drops the damaging blur and no normal photo.
- MIN_FRONTAL = 0.40 (about 66 degrees of yaw). buffalo_s embeds turned heads well: three-quarter views
  (hard/03-06, frontal 0.63-0.76) score 0.52-0.64 against their person's gallery centroid, even the two
  profiles (hard/01, 02: frontal 0.18, 0.25) 0.55 and 0.59. So only near-profiles are refused, where one eye
  is hidden and the 5-point alignment is guesswork (and a gallery photo shown to users should show a face);
  every normal photo scores 0.46 or more (859 faces).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from lookalike.imaging import DecodedImage
from lookalike.pipeline.aligner import align
from lookalike.pipeline.types import Detection

MIN_FACE_PX = 40.0
MIN_SHARPNESS = 0.35
MIN_FRONTAL = 0.40
# Median nose height between the eye line and the mouth line, as a share of that distance, on the normal
# photos (0.55): the neutral pitch.
NEUTRAL_NOSE_HEIGHT = 0.55
# The part of the 112x112 crop that is face (eyes at y~52, mouth at y~92), away from the black fill that
# alignment adds where a face touches the photo's edge.
_INNER = (slice(20, 108), slice(16, 96))
# Re-blur kernel of the sharpness measure (Crete-Roffet et al., 2007).
_REBLUR = 9


@dataclass(frozen=True)
class FaceQuality:
    size_px: float  # short side of the detection box, in pixels of the original photo
    sharpness: float  # 0 (flat) .. 1: share of edge contrast that a re-blur removes
    frontal: float  # 1 frontal .. 0 profile: cos(yaw) * cos(pitch) as estimated from the landmarks
    usable: bool
    reasons: tuple[str, ...]  # why not usable: "too_small", "blurred", "not_frontal"


def sharpness(crop: npt.NDArray[np.uint8]) -> float:
    """No-reference blur measure: how much neighbour contrast a further blur destroys. A sharp face loses most
    of it, an already blurred one little. Unlike the variance of the Laplacian it does not depend on contrast
    or lighting (a dim or greyscale photo is not "blurred"), and it lies in 0..1 whatever the photo."""
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    inner = grey[_INNER]
    total = 0.0
    for axis, kernel in ((0, (1, _REBLUR)), (1, (_REBLUR, 1))):
        blurred = cv2.blur(grey, kernel)[_INNER]
        d_orig = np.abs(np.diff(inner, axis=axis))
        d_blur = np.abs(np.diff(blurred, axis=axis))
        lost = np.maximum(0.0, d_orig - d_blur).sum()
        total += float(lost / max(float(d_orig.sum()), 1e-6))
    return total / 2


def head_pose(landmarks: npt.NDArray[np.float32]) -> tuple[float, float]:
    """(yaw, pitch) in degrees, estimated from where the nose tip lies in the eye-mouth frame.

    The nose tip stands about half an eye distance in front of the eyes, so turning the head by an angle a
    moves it sideways by (eye distance / 2) * sin(a) while the eyes' half distance shrinks by cos(a): the
    sideways offset over the half eye distance is tan(yaw). Nodding moves it along the eye-mouth line the
    same way. The frame is the eye line (roll removed) and the midline through the eye and mouth centres.
    """
    lm = landmarks.astype(np.float64)
    left_eye, right_eye, nose, mouth_l, mouth_r = lm
    eye_mid, mouth_mid = (left_eye + right_eye) / 2, (mouth_l + mouth_r) / 2
    eye_vec = right_eye - left_eye
    half_eye = float(np.linalg.norm(eye_vec)) / 2
    if half_eye < 1e-6:
        return 90.0, 0.0
    ux = eye_vec / (2 * half_eye)
    uy = np.array([-ux[1], ux[0]])
    mid = mouth_mid - eye_mid
    height = float(mid @ uy)
    rel = nose - eye_mid
    along = float(rel @ uy)
    # Offset from the eye-mouth midline, not from the eye centre: a tilted midline is not a turned head.
    across = float(rel @ ux) - (float(mid @ ux) * along / height if abs(height) > 1e-6 else 0.0)
    yaw = math.degrees(math.atan2(across, half_eye))
    pitch = math.degrees(math.atan2(along - NEUTRAL_NOSE_HEIGHT * height, half_eye))
    return yaw, pitch


def frontality(landmarks: npt.NDArray[np.float32]) -> float:
    yaw, pitch = head_pose(landmarks)
    return max(0.0, math.cos(math.radians(yaw)) * math.cos(math.radians(pitch)))


def assess(
    detection: Detection,
    crop: npt.NDArray[np.uint8],
    *,
    min_size: float = MIN_FACE_PX,
    min_sharpness: float = MIN_SHARPNESS,
    min_frontal: float = MIN_FRONTAL,
) -> FaceQuality:
    """`detection` in the coordinates of the original photo; `crop` the aligned 112x112 RGB face."""
    size = float(min(detection.width, detection.height))
    sharp = sharpness(crop)
    frontal = frontality(detection.landmarks)
    reasons: list[str] = []
    if size < min_size:
        reasons.append("too_small")
    if sharp < min_sharpness:
        reasons.append("blurred")
    if frontal < min_frontal:
        reasons.append("not_frontal")
    return FaceQuality(
        size_px=round(size, 1),
        sharpness=round(sharp, 4),
        frontal=round(frontal, 4),
        usable=not reasons,
        reasons=tuple(reasons),
    )


def assess_in_image(image: DecodedImage, detection: Detection) -> FaceQuality:
    """Quality of a face found by Pipeline.analyze (original-photo coordinates) in the decoded `image`: the
    crop is re-aligned exactly as the embedder saw it (the pipeline does not keep its crops)."""
    decoded = detection.scaled(image.scale) if image.scale != 1.0 else detection
    return assess(detection, align(image.rgb, decoded.landmarks))
