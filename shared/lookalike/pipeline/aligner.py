"""5-point similarity alignment to ArcFace's 112x112 template."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from lookalike.pipeline.types import FloatArray

ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
SIZE = 112


def similarity_transform(src: FloatArray, dst: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Least-squares rotation + uniform scale + translation mapping src onto dst (Umeyama, 1991)."""
    src64 = src.astype(np.float64)
    mu_s, mu_d = src64.mean(0), dst.mean(0)
    s_c, d_c = src64 - mu_s, dst - mu_d
    cov = d_c.T @ s_c / len(src64)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    scale = float(np.trace(np.diag(sig) @ sign) / s_c.var(0).sum())
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rot
    matrix[:, 2] = mu_d - scale * rot @ mu_s
    return matrix


def align(rgb: npt.NDArray[np.uint8], landmarks: FloatArray) -> npt.NDArray[np.uint8]:
    matrix = similarity_transform(landmarks, ARCFACE_TEMPLATE)
    crop = cv2.warpAffine(rgb, matrix, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    return np.asarray(crop, dtype=np.uint8)
