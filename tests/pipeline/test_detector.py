"""SCRFD detection on real photos with the real buffalo_s detector: portraits, groups, no-face photos, the hard
cases (tilt, EXIF, sideways, tight greyscale crop) and the retry path (quarter turns, tilts, tight crops).

Where a photo is transformed here, the expected landmark positions are the upright photo's landmarks pushed
through the same transform, so "found the face" means "found it where it is, with its eyes and mouth in place".
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import pytest
from insightface.model_zoo.scrfd import SCRFD
from PIL import Image

from lookalike.errors import ModelUnavailable
from lookalike.imaging import decode_image
from lookalike.pipeline.aligner import align
from lookalike.pipeline.detector import FaceDetector, _shrink
from lookalike.pipeline.embedder import FaceEmbedder
from lookalike.pipeline.pipeline import Pipeline
from lookalike.pipeline.scrfd import Candidates, Scrfd
from lookalike.pipeline.types import Detection

FACES = Path(__file__).resolve().parents[1] / "data" / "faces"
MAX_PIXELS = 40_000_000
RGB = npt.NDArray[np.uint8]
Points = npt.NDArray[np.float64]

PORTRAITS = [
    "probes/hori_miona/12.jpg",
    "probes/saito_asuka/11.jpg",
    "strangers/meryl_streep/06.jpg",
    "strangers/bill_gates/04.jpg",
    "mini_gallery/george_w_bush/01.jpg",
]


@pytest.fixture(scope="module")
def detector(pipeline: Pipeline) -> FaceDetector:
    return pipeline.load()[0]


@pytest.fixture(scope="module")
def embedder(pipeline: Pipeline) -> FaceEmbedder:
    return pipeline.load()[1]


def load_rgb(rel: str) -> RGB:
    return np.asarray(decode_image((FACES / rel).read_bytes(), max_pixels=MAX_PIXELS).rgb, dtype=np.uint8)


def only_face(found: list[Detection]) -> Detection:
    assert len(found) == 1, f"expected one face, got {len(found)}: {[d.box for d in found]}"
    return found[0]


def eye_distance(d: Detection) -> float:
    return float(np.linalg.norm(d.landmarks[0] - d.landmarks[1]))


def inside(point: Points, box: tuple[float, float, float, float]) -> bool:
    return bool(box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3])


def rot90_points(points: npt.NDArray[np.floating[Any]], k: int, height: int, width: int) -> Points:
    """Where pixel coordinates go under np.rot90(image, k) (counter-clockwise quarter turns)."""
    pts = points.astype(np.float64)
    for i in range(k % 4):
        w = width if i % 2 == 0 else height
        pts = np.stack([pts[:, 1], (w - 1) - pts[:, 0]], axis=1)
    return pts


def tilt(rgb: RGB, degrees: float) -> tuple[RGB, npt.NDArray[np.float64]]:
    """Rotate about the centre on a same-size canvas, as a hand-held tilted photo; returns the 2x3 forward map."""
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return np.asarray(cv2.warpAffine(rgb, m, (w, h)), dtype=np.uint8), m


def cosine_to_upright(embedder: FaceEmbedder, upright: RGB, d0: Detection, other: RGB, d: Detection) -> float:
    e = embedder.embed([align(upright, d0.landmarks), align(other, d.landmarks)])
    return float(e[0] @ e[1])


def assert_landmarks_at(d: Detection, expected: Points, iod: float, *, each: float, centroid: float) -> None:
    err = np.linalg.norm(d.landmarks - expected, axis=1) / iod
    centre_err = float(np.linalg.norm(d.landmarks.mean(0) - expected.mean(0))) / iod
    assert centre_err <= centroid, f"landmark centroid {centre_err:.2f} eye-distances off; each: {err.round(2)}"
    assert err.max() <= each, f"landmarks off by {err.round(2)} eye-distances"
    assert inside(expected.mean(0), d.box), f"face centre {expected.mean(0).round(1)} outside box {d.box}"


# --------------------------------------------------------------------------- ordinary photos


@pytest.mark.parametrize("rel", PORTRAITS)
def test_one_upright_face_in_a_portrait(detector: FaceDetector, rel: str) -> None:
    rgb = load_rgb(rel)
    h, w = rgb.shape[:2]
    d = only_face(detector.detect(rgb))
    assert d.score >= 0.7
    x1, y1, x2, y2 = d.box
    assert -2 <= x1 < x2 <= w + 2 and -2 <= y1 < y2 <= h + 2
    assert d.landmarks.shape == (5, 2) and d.landmarks.dtype == np.float32
    for point in d.landmarks:
        assert inside(point, d.box)
    left_eye, right_eye, nose, mouth_left, mouth_right = d.landmarks
    assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])


@pytest.mark.parametrize("rel", ["group/02.jpg", "group/07.jpg"])
def test_five_faces_in_a_group_photo(detector: FaceDetector, rel: str) -> None:
    rgb = load_rgb(rel)
    h, w = rgb.shape[:2]
    found = detector.detect(rgb)
    assert len(found) == 5
    for d in found:
        assert d.score >= 0.7
        assert 0 <= d.box[0] < d.box[2] <= w and 0 <= d.box[1] < d.box[3] <= h
    # five different people: no two boxes overlap
    for i, a in enumerate(found):
        for b in found[i + 1 :]:
            assert min(a.box[2], b.box[2]) <= max(a.box[0], b.box[0]) or min(a.box[3], b.box[3]) <= max(
                a.box[1], b.box[1]
            )


def test_small_faces_in_a_large_photo_are_found_once(detector: FaceDetector) -> None:
    """A group photo pasted small into a 3000x2000 frame: the faces are under 32 px at the 640 pass, so the
    larger pass runs too; merging both must give each face once, at its place in the frame."""
    group = load_rgb("group/07.jpg")
    reference = detector.detect(group)
    canvas = np.full((2000, 3000, 3), 128, np.uint8)
    top, left = 700, 1100
    canvas[top : top + group.shape[0], left : left + group.shape[1]] = group
    found = detector.detect(canvas)
    assert len(found) == len(reference) == 5
    for ref in reference:
        cx, cy = (ref.box[0] + ref.box[2]) / 2 + left, (ref.box[1] + ref.box[3]) / 2 + top
        matches = [d for d in found if inside(np.array([cx, cy]), d.box)]
        assert len(matches) == 1
        np.testing.assert_allclose(
            matches[0].landmarks, ref.landmarks + np.array([left, top]), atol=0.25 * eye_distance(ref)
        )


@pytest.mark.parametrize("tiles", [2, 3])
def test_tiled_crowd_of_any_size(detector: FaceDetector, tiles: int) -> None:
    """group/02 tiled 2x2 (1188x766: the larger pass runs at a size that is not a multiple of 32) and 3x3."""
    group = load_rgb("group/02.jpg")
    crowd = np.ascontiguousarray(np.tile(group, (tiles, tiles, 1)))
    found = detector.detect(crowd)
    assert len(found) == 5 * tiles * tiles
    h, w = group.shape[:2]
    cells = {(int((d.box[0] + d.box[2]) / 2 // w), int((d.box[1] + d.box[3]) / 2 // h)) for d in found}
    assert cells == {(i, j) for i in range(tiles) for j in range(tiles)}


def test_detector_sizes_that_are_not_multiples_of_32(pipeline: Pipeline) -> None:
    odd = FaceDetector(
        pipeline.pack.detector, providers=["CPUExecutionProvider"], threads=1, det_size=600, large_size=1000
    )
    assert len(odd.detect(load_rgb("group/07.jpg"))) == 5
    assert len(odd.detect(np.ascontiguousarray(np.tile(load_rgb("group/02.jpg"), (2, 2, 1))))) == 20
    assert len(odd.detect(load_rgb("probes/hori_miona/12.jpg"))) == 1


@pytest.mark.parametrize("rel", ["noface/04.jpg", "noface/08.jpg"])
def test_no_face_in_landscape_or_cartoon(detector: FaceDetector, rel: str) -> None:
    assert detector.detect(load_rgb(rel)) == []


def test_no_face_in_a_flat_image(detector: FaceDetector) -> None:
    assert detector.detect(np.full((300, 400, 3), 127, np.uint8)) == []


# --------------------------------------------------------------------------- hard photos from the test set


@pytest.mark.parametrize("rel", ["hard/05.jpg", "hard/06.jpg"])
def test_tilted_face_is_found_with_tilted_landmarks(detector: FaceDetector, rel: str) -> None:
    d = only_face(detector.detect(load_rgb(rel)))
    left_eye, right_eye = d.landmarks[0], d.landmarks[1]
    eye_line = math.degrees(math.atan2(right_eye[1] - left_eye[1], right_eye[0] - left_eye[0]))
    assert 15 <= abs(eye_line) <= 55, f"eye line at {eye_line:.0f} deg; the photo is tilted ~35 deg"


def test_tight_greyscale_side_view_crop(detector: FaceDetector) -> None:
    rgb = load_rgb("hard/04.jpg")
    assert rgb.shape == (150, 150, 3)
    d = only_face(detector.detect(rgb))
    assert d.width >= 75 and d.height >= 75  # the face fills the frame


def test_exif_rotated_photo_is_upright_after_decoding(detector: FaceDetector) -> None:
    data = (FACES / "hard/16.jpg").read_bytes()
    with Image.open(FACES / "hard/16.jpg") as img:
        stored = np.asarray(img.convert("RGB"), dtype=np.uint8)
    upright = np.asarray(decode_image(data, max_pixels=MAX_PIXELS).rgb, dtype=np.uint8)
    assert stored.shape[:2] == (1024, 684) and upright.shape[:2] == (684, 1024)

    d = only_face(detector.detect(upright))
    left_eye, right_eye, nose, mouth_left, mouth_right = d.landmarks
    assert left_eye[0] < right_eye[0] and max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])

    # The stored pixels lie sideways (a quarter turn counter-clockwise of the upright picture): the face is still
    # found there, with its landmarks where the quarter turn puts them.
    np.testing.assert_array_equal(np.rot90(upright, 1), stored)
    sideways = only_face(detector.detect(np.ascontiguousarray(stored)))
    expected = rot90_points(d.landmarks, 1, *upright.shape[:2])
    assert_landmarks_at(sideways, expected, eye_distance(d), each=0.25, centroid=0.15)


def test_sideways_photo_without_exif(detector: FaceDetector, embedder: FaceEmbedder) -> None:
    """17 lies on its side (pixels turned 90 deg counter-clockwise, no EXIF): the face is found, and its landmarks
    lie sideways too (eyes left of the mouth), which is what alignment needs to straighten it."""
    rgb = load_rgb("hard/17.jpg")
    d = only_face(detector.detect(rgb))
    eyes = (d.landmarks[0] + d.landmarks[1]) / 2
    mouth = (d.landmarks[3] + d.landmarks[4]) / 2
    down = math.degrees(math.atan2(mouth[1] - eyes[1], mouth[0] - eyes[0]))
    assert abs(down) <= 30, f"eyes->mouth direction {down:.0f} deg, expected ~0 (face top points left)"
    # 16 and 17 are two photos of the same person: aligned properly, their embeddings agree.
    upright16 = np.asarray(decode_image((FACES / "hard/16.jpg").read_bytes(), max_pixels=MAX_PIXELS).rgb, np.uint8)
    d16 = only_face(detector.detect(upright16))
    assert cosine_to_upright(embedder, upright16, d16, rgb, d) >= 0.6


# --------------------------------------------------------------------------- the retry path, on transformed portraits


@pytest.mark.parametrize("k", [1, 2, 3], ids=["rot90", "rot180", "rot270"])
@pytest.mark.parametrize("rel", PORTRAITS[1:4])
def test_quarter_turned_portrait(detector: FaceDetector, embedder: FaceEmbedder, rel: str, k: int) -> None:
    upright = load_rgb(rel)
    d0 = only_face(detector.detect(upright))
    turned = np.ascontiguousarray(np.rot90(upright, k))
    d = only_face(detector.detect(turned))
    expected = rot90_points(d0.landmarks, k, *upright.shape[:2])
    assert_landmarks_at(d, expected, eye_distance(d0), each=0.25, centroid=0.15)
    # the landmarks are in order (left eye is the left eye), so the aligned face is the same person
    assert cosine_to_upright(embedder, upright, d0, turned, d) >= 0.85


@pytest.mark.parametrize("k", [1, 2, 3], ids=["rot90", "rot180", "rot270"])
def test_retry_search_maps_boxes_back(detector: FaceDetector, k: int) -> None:
    """The padded/rotated search on its own (what detect falls back to when the upright pass finds nothing)."""
    upright = load_rgb("strangers/meryl_streep/06.jpg")
    d0 = only_face(detector.detect(upright))
    turned = np.ascontiguousarray(np.rot90(upright, k))
    d = only_face(detector._detect_transformed(turned))
    h, w = turned.shape[:2]
    assert 0 <= d.box[0] < d.box[2] <= w and 0 <= d.box[1] < d.box[3] <= h
    assert_landmarks_at(
        d, rot90_points(d0.landmarks, k, *upright.shape[:2]), eye_distance(d0), each=0.25, centroid=0.15
    )


@pytest.mark.parametrize(
    ("rel", "k"),
    [("probes/ikoma_rina/11.jpg", 2), ("mini_gallery/kevin_sussman/01.jpg", 1), ("probes/nibu_akari/11.jpg", 3)],
)
def test_turned_face_the_upright_pass_misses(detector: FaceDetector, rel: str, k: int) -> None:
    upright = load_rgb(rel)
    d0 = only_face(detector.detect(upright))
    turned = np.ascontiguousarray(np.rot90(upright, k))
    assert detector.detect(turned, retry=False) == []  # so only the retry can find it
    d = only_face(detector.detect(turned))
    assert_landmarks_at(
        d, rot90_points(d0.landmarks, k, *upright.shape[:2]), eye_distance(d0), each=0.25, centroid=0.15
    )


@pytest.mark.parametrize("degrees", [30.0, 40.0, -35.0, -45.0])
@pytest.mark.parametrize("rel", PORTRAITS[:3])
def test_tilted_portrait(detector: FaceDetector, embedder: FaceEmbedder, rel: str, degrees: float) -> None:
    upright = load_rgb(rel)
    d0 = only_face(detector.detect(upright))
    tilted, m = tilt(upright, degrees)
    d = only_face(detector.detect(tilted))
    expected = d0.landmarks.astype(np.float64) @ m[:, :2].T + m[:, 2]
    assert_landmarks_at(d, expected, eye_distance(d0), each=0.35, centroid=0.25)
    assert cosine_to_upright(embedder, upright, d0, tilted, d) >= 0.8


def test_steep_tilt_found_by_the_rotated_retry(detector: FaceDetector, embedder: FaceEmbedder) -> None:
    upright = load_rgb("mini_gallery/kevin_sussman/01.jpg")
    d0 = only_face(detector.detect(upright))
    tilted, m = tilt(upright, 60.0)
    assert detector.detect(tilted, retry=False) == []
    d = only_face(detector.detect(tilted))
    expected = d0.landmarks.astype(np.float64) @ m[:, :2].T + m[:, 2]
    assert_landmarks_at(d, expected, eye_distance(d0), each=0.3, centroid=0.2)
    assert cosine_to_upright(embedder, upright, d0, tilted, d) >= 0.8


@pytest.mark.parametrize("rel", PORTRAITS)
def test_face_cropped_to_its_own_box(detector: FaceDetector, rel: str) -> None:
    """A crop with no margin at all (the face fills the frame, as in an avatar): the 128 px pass sees it."""
    upright = load_rgb(rel)
    d0 = only_face(detector.detect(upright))
    x1, y1, x2, y2 = (round(v) for v in d0.box)
    x1, y1 = max(x1, 0), max(y1, 0)
    crop = np.ascontiguousarray(upright[y1:y2, x1:x2])
    d = only_face(detector.detect(crop))
    expected = d0.landmarks.astype(np.float64) - [x1, y1]
    err = np.linalg.norm(d.landmarks - expected, axis=1) / eye_distance(d0)
    assert err.max() <= 0.2, err.round(2)


def test_face_cut_by_the_frame_edge(detector: FaceDetector) -> None:
    """Half a face at the left edge: found, with its landmarks where they were in the whole photo."""
    upright = load_rgb("probes/hori_miona/12.jpg")
    d0 = only_face(detector.detect(upright))
    cut = round((d0.box[0] + d0.box[2]) / 2 - 0.15 * d0.width)
    part = np.ascontiguousarray(upright[:, cut:])
    d = only_face(detector.detect(part))
    assert d.box[0] >= 0 and d.box[2] <= part.shape[1]
    visible = d0.landmarks[:, 0] >= cut
    expected = d0.landmarks.astype(np.float64) - [cut, 0]
    err = np.linalg.norm(d.landmarks - expected, axis=1)[visible] / eye_distance(d0)
    assert err.max() <= 0.35, err.round(2)


def test_shrinking_for_the_detector_averages_pixels() -> None:
    """Large photos are shrunk by area averaging: sampling (bilinear) would alias fine detail into noise."""
    noise = np.random.default_rng(0).integers(0, 256, size=(2000, 3000, 3), dtype=np.uint8)
    small, factor = _shrink(noise, 300)
    assert small.shape == (200, 300, 3) and small.dtype == np.uint8 and factor == pytest.approx(0.1)
    assert small.std() < 12  # the mean of ~100 pixels each; sampled pixels would keep most of the ~74 spread
    same, one = _shrink(noise[:100, :200], 300)
    assert one == 1.0 and same.shape == (100, 200, 3)


# --------------------------------------------------------------------------- work that follows the photo


class CountingDetector(FaceDetector):
    """The real detector, recording the input size of every SCRFD run it makes."""

    def __init__(self, model_path: Path, **kwargs: Any) -> None:
        super().__init__(model_path, providers=["CPUExecutionProvider"], threads=1, **kwargs)
        self.inputs: list[tuple[int, int]] = []

    def _candidates(self, rgb: RGB, size: tuple[int, int], threshold: float) -> Candidates:
        self.inputs.append(size)
        return super()._candidates(rgb, size, threshold)

    def pixels(self) -> int:
        return sum(w * h for w, h in self.inputs)


@pytest.fixture(scope="module")
def counting(pipeline: Pipeline) -> CountingDetector:
    return CountingDetector(pipeline.pack.detector)


@pytest.fixture(scope="module")
def full_only(pipeline: Pipeline) -> CountingDetector:
    """The detector without its quick pass: every photo gets the 640 pass."""
    return CountingDetector(pipeline.pack.detector, quick_size=0)


def box_iou(a: Detection, b: Detection) -> float:
    x1, y1, x2, y2 = max(a.box[0], b.box[0]), max(a.box[1], b.box[1]), min(a.box[2], b.box[2]), min(a.box[3], b.box[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / (a.width * a.height + b.width * b.height - inter)


def test_scrfd_finds_what_insightface_finds(pipeline: Pipeline) -> None:
    """Our SCRFD pass takes RGB and decodes only the anchors over the threshold: the same boxes, scores and
    landmarks, after suppression, as insightface's own SCRFD given the BGR photo, on a portrait, a group and a crowd
    of tiles."""
    plain = SCRFD(model_file=str(pipeline.pack.detector))
    ours = Scrfd(ort.InferenceSession(str(pipeline.pack.detector), providers=["CPUExecutionProvider"]))
    crowd = np.ascontiguousarray(np.tile(load_rgb("group/02.jpg"), (2, 2, 1)))
    for rgb in (load_rgb("probes/hori_miona/12.jpg"), load_rgb("group/07.jpg"), crowd):
        for size in [(640, 640), (640, 448), (128, 128)]:
            boxes, kps = plain.detect(np.ascontiguousarray(rgb[:, :, ::-1]), input_size=[size], det_thresh=0.3)
            found, landmarks = ours.candidates(rgb, size, 0.3)
            keep = ours.suppress(found)
            assert len(boxes) > 0 or size == (128, 128)
            np.testing.assert_allclose(found[keep], boxes, rtol=1e-5, atol=1e-3)
            np.testing.assert_allclose(landmarks[keep], kps, rtol=1e-5, atol=1e-3)


def test_a_detector_without_landmarks_is_refused(pipeline: Pipeline, tmp_path: Path) -> None:
    """SCRFD graphs come with and without landmarks; one without cannot align a face, and says so on load."""
    graph = onnx.load(str(pipeline.pack.detector))
    kept = [o for o in graph.graph.output if "kps" not in o.name.lower()]
    assert len(kept) == 6, [o.name for o in graph.graph.output]
    del graph.graph.output[:]
    graph.graph.output.extend(kept)
    path = tmp_path / "no_landmarks.onnx"
    onnx.save(graph, str(path))
    with pytest.raises(ModelUnavailable, match="6 outputs; an SCRFD detector with landmarks has 9 or 15"):
        Scrfd(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]))


@pytest.mark.parametrize(
    "rel",
    ["strangers/meryl_streep/06.jpg", "strangers/bill_gates/04.jpg", "mini_gallery/kevin_sussman/01.jpg"],
)
def test_a_portrait_is_settled_by_the_quick_pass(
    counting: CountingDetector, full_only: CountingDetector, rel: str
) -> None:
    """One large, clear face (LFW frames, scoring 0.85 and more): the 320 pass (and the 128 one) find it where the
    640 pass does, at under a third of the pixels, and nothing else runs."""
    rgb = load_rgb(rel)
    counting.inputs.clear()
    full_only.inputs.clear()
    quick, full = only_face(counting.detect(rgb)), only_face(full_only.detect(rgb))
    assert max(max(size) for size in counting.inputs) == 320, counting.inputs
    assert counting.pixels() < 0.35 * full_only.pixels()
    assert box_iou(quick, full) >= 0.85
    assert np.linalg.norm(quick.landmarks - full.landmarks, axis=1).max() <= 0.1 * eye_distance(full)


@pytest.mark.parametrize(
    "rel", ["group/02.jpg", "group/07.jpg", "probes/shiraishi_mai/11.jpg", "probes/hori_miona/12.jpg"]
)
def test_small_or_weak_faces_get_the_full_pass(
    counting: CountingDetector, full_only: CountingDetector, rel: str
) -> None:
    """Small faces (a group) or a find under 0.85 at 320 (shiraishi_mai/11 scores 0.75, hori_miona/12 0.83): the
    640 pass decides, and the answer is the full pass's own."""
    rgb = load_rgb(rel)
    counting.inputs.clear()
    found, full = counting.detect(rgb), full_only.detect(rgb)
    assert max(max(size) for size in counting.inputs) == 640, counting.inputs
    assert [d.box for d in found] == [d.box for d in full]


def test_a_weak_upright_face_is_checked_on_a_crop(counting: CountingDetector) -> None:
    """A weak find (rm_bts/12 scores 0.69) is checked against its turns on 160 px crops, not on whole turned
    photos; none wins, so the upright find stays."""
    rgb = load_rgb("strangers/rm_bts/12.jpg")
    counting.inputs.clear()
    d = only_face(counting.detect(rgb))
    assert d.score < 0.8
    crops = [size for size in counting.inputs if size == (160, 160)]
    assert len(crops) == 4  # upright and three turns
    assert counting.inputs[-4:] == crops
    assert d.box == only_face(counting._detect_upright(rgb)).box


def test_a_sideways_face_wins_on_its_crop(counting: CountingDetector) -> None:
    """hard/17 lies on its side: the crop check names the quarter turn that straightens it (-90: clockwise),
    and only that turn of the whole photo is run."""
    rgb = load_rgb("hard/17.jpg")
    upright = counting._detect_upright(rgb)
    weak = max(upright, key=lambda d: d.score)
    assert weak.score < 0.8
    assert counting._turn_on_crop(rgb, weak) == -90.0
    counting.inputs.clear()
    counting.detect(rgb)
    turned_passes = [size for size in counting.inputs if max(size) == 640]
    assert len(turned_passes) == 2  # the upright 640 pass and the one turned pass
