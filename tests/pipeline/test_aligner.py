"""5-point similarity alignment: the Umeyama fit and the 112x112 ArcFace crop."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from lookalike.pipeline.aligner import ARCFACE_TEMPLATE, SIZE, align, similarity_transform

Matrix = npt.NDArray[np.float64]


def similarity(scale: float, degrees: float, tx: float, ty: float) -> Matrix:
    a = math.radians(degrees)
    return np.array(
        [
            [scale * math.cos(a), -scale * math.sin(a), tx],
            [scale * math.sin(a), scale * math.cos(a), ty],
        ]
    )


def apply(m: Matrix, points: npt.NDArray[np.floating]) -> Matrix:
    return np.asarray(points, dtype=np.float64) @ m[:, :2].T + m[:, 2]


@pytest.mark.parametrize(
    ("scale", "degrees", "tx", "ty"),
    [(1.0, 0.0, 0.0, 0.0), (2.5, 30.0, -40.0, 17.0), (0.4, -75.0, 300.0, 120.5), (1.7, 180.0, 12.0, -8.0)],
)
def test_recovers_a_known_similarity_exactly(scale: float, degrees: float, tx: float, ty: float) -> None:
    rng = np.random.default_rng(7)
    src = rng.uniform(-100, 400, size=(5, 2)).astype(np.float32)
    truth = similarity(scale, degrees, tx, ty)
    dst = apply(truth, src)
    found = similarity_transform(src, dst)
    assert found.shape == (2, 3)
    np.testing.assert_allclose(found, truth, atol=1e-4 * max(1.0, scale), rtol=1e-5)
    np.testing.assert_allclose(apply(found, src), dst, atol=1e-3)


def test_landmarks_to_template_inverts_template_to_landmarks() -> None:
    """What align uses: the map from detected landmarks onto the template (a face 3x larger, turned 20 deg)."""
    to_photo = similarity(3.0, 20.0, 210.0, 95.0)
    landmarks = apply(to_photo, ARCFACE_TEMPLATE).astype(np.float32)
    back = similarity_transform(landmarks, ARCFACE_TEMPLATE)
    np.testing.assert_allclose(apply(back, landmarks), ARCFACE_TEMPLATE, atol=1e-3)
    np.testing.assert_allclose(back[:, :2] @ to_photo[:, :2], np.eye(2), atol=1e-6)


def test_noisy_points_give_the_least_squares_fit() -> None:
    """With noise the fit is not exact, but it is the best similarity: no perturbation of it does better."""
    rng = np.random.default_rng(3)
    src = rng.uniform(0, 200, size=(5, 2))
    dst = apply(similarity(1.3, 12.0, 5.0, -3.0), src) + rng.normal(0, 2.0, size=(5, 2))
    best = similarity_transform(src.astype(np.float32), dst)

    def residual(m: Matrix) -> float:
        return float(((apply(m, src) - dst) ** 2).sum())

    base = residual(best)
    for delta in ((1.01, 0, 0, 0), (0.99, 0, 0, 0), (1, 0.5, 0, 0), (1, -0.5, 0, 0), (1, 0, 0.5, 0), (1, 0, 0, -0.5)):
        s, d, x, y = delta
        nudged = similarity(s, d, x, y)
        combined = np.vstack([nudged, [0, 0, 1]]) @ np.vstack([best, [0, 0, 1]])
        assert residual(combined[:2]) > base


def test_never_returns_a_reflection() -> None:
    """Mirror-image points: the best *rotation* is returned, never a flip (a flipped face is another face)."""
    src = ARCFACE_TEMPLATE.astype(np.float32)
    mirrored = ARCFACE_TEMPLATE * [-1.0, 1.0] + [200.0, 0.0]
    m = similarity_transform(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0


def test_landmarks_on_the_template_give_the_identity_crop() -> None:
    rng = np.random.default_rng(11)
    image = rng.integers(0, 256, size=(SIZE, SIZE, 3), dtype=np.uint8)
    m = similarity_transform(ARCFACE_TEMPLATE.astype(np.float32), ARCFACE_TEMPLATE)
    np.testing.assert_allclose(m, [[1, 0, 0], [0, 1, 0]], atol=1e-5)
    crop = align(image, ARCFACE_TEMPLATE.astype(np.float32))
    assert crop.shape == (SIZE, SIZE, 3) and crop.dtype == np.uint8
    diff = np.abs(crop.astype(np.int16) - image.astype(np.int16))
    assert diff.max() <= 1


def test_crop_of_a_larger_image_lands_on_the_template() -> None:
    """Draw bright dots at a transformed template in a big photo: after align they sit on the template."""
    to_photo = similarity(2.2, -25.0, 300.0, 180.0)
    landmarks = np.rint(apply(to_photo, ARCFACE_TEMPLATE))  # dot centres on whole pixels
    image = np.zeros((640, 800, 3), np.uint8)
    for x, y in landmarks.astype(int):
        image[y - 5 : y + 6, x - 5 : x + 6] = (255, 255, 255)
    crop = align(image, landmarks.astype(np.float32))
    assert crop.shape == (SIZE, SIZE, 3) and crop.dtype == np.uint8
    grey = crop[:, :, 0].astype(np.float64)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    claimed = np.zeros((SIZE, SIZE), bool)
    for x, y in ARCFACE_TEMPLATE:
        near = (np.abs(xs - x) <= 6) & (np.abs(ys - y) <= 6)
        claimed |= near
        weight = grey * near
        centre = np.array([(weight * xs).sum(), (weight * ys).sum()]) / weight.sum()
        assert np.linalg.norm(centre - [x, y]) <= 0.5, (centre, (x, y))
    assert grey[~claimed].max() == 0  # nothing else is bright


def test_outside_the_photo_is_black() -> None:
    image = np.full((200, 200, 3), 255, np.uint8)
    landmarks = (ARCFACE_TEMPLATE - [40.0, 40.0]).astype(np.float32)  # the face hangs off the top-left corner
    crop = align(image, landmarks)
    assert crop.shape == (SIZE, SIZE, 3)
    assert crop[:20, :20].max() == 0
    assert crop[-20:, -20:].min() == 255
