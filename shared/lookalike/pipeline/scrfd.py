"""One SCRFD pass (insightface's detector family): letterbox, run, decode, suppress.

insightface's own SCRFD class does the same (tests/pipeline/test_detector.py holds the two to the same boxes,
scores and landmarks on a portrait, a group and a crowd). It is not imported, because importing it costs every
process that detects (gateway, worker, CLI) about 0.4 s: insightface's package imports SciPy, scikit-image and
requests on the way, and its constructor parses the ONNX file once more. This one also takes RGB (insightface takes
BGR and swaps it back) and decodes only the anchors over the threshold (insightface decodes all 33,600 of a 640
input, then keeps a handful).
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from lookalike.errors import ModelUnavailable
from lookalike.pipeline.types import FloatArray

UInt8Image = npt.NDArray[np.uint8]
# One pass's candidates before suppression: (n, 5) boxes with their scores, best first, and (n, 5, 2) landmarks.
Candidates = tuple[FloatArray, FloatArray]

# SCRFD graphs with landmarks, by their output count (scores, boxes and landmarks per stride): the strides and the
# anchors per grid cell. The graphs without landmarks (6 or 10 outputs) cannot align a face.
LAYOUTS = {9: ((8, 16, 32), 2), 15: ((8, 16, 32, 64, 128), 1)}
INPUT_MEAN, INPUT_STD = 127.5, 128.0
# Anchor grids follow the input shapes, which follow the photos' shapes: keep the cache bounded, as insightface does.
MAX_CACHED_GRIDS = 100


class Scrfd:
    def __init__(self, session: ort.InferenceSession, *, nms_threshold: float = 0.4) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name
        outputs = session.get_outputs()
        if len(outputs) not in LAYOUTS:
            raise ModelUnavailable(
                f"the detector has {len(outputs)} outputs; an SCRFD detector with landmarks has 9 or 15"
            )
        self.output_names = [o.name for o in outputs]
        self.strides, self.anchors_per_cell = LAYOUTS[len(outputs)]
        # Batched graphs (buffalo_s) put the image first; others have no batch axis.
        self.batched = len(outputs[0].shape) == 3
        self.nms_threshold = nms_threshold
        self._centers: dict[tuple[int, int, int], FloatArray] = {}

    def candidates(self, rgb: UInt8Image, input_size: tuple[int, int], threshold: float) -> Candidates:
        """Every box scoring `threshold` or more in `rgb` scaled into an `input_size` (width, height) input, top-left
        and letterboxed: boxes and landmarks in `rgb` coordinates, best first."""
        # Thread-safe: ORT sessions run concurrently, and the anchor cache only ever gains identical entries.
        im_ratio = float(rgb.shape[0]) / rgb.shape[1]
        if im_ratio > float(input_size[1]) / input_size[0]:
            new_height = input_size[1]
            new_width = int(new_height / im_ratio)
        else:
            new_width = input_size[0]
            new_height = int(new_width * im_ratio)
        det_scale = float(new_height) / rgb.shape[0]
        canvas = np.zeros((input_size[1], input_size[0], 3), dtype=np.uint8)
        canvas[:new_height, :new_width, :] = cv2.resize(rgb, (new_width, new_height))
        scores, boxes, kps = self._forward(canvas, threshold)
        order = np.argsort(-scores, kind="stable")
        found = np.hstack((boxes / det_scale, scores[:, None])).astype(np.float32, copy=False)[order]
        return found, (kps / det_scale).astype(np.float32, copy=False)[order]

    def suppress(self, boxes: FloatArray) -> list[int]:
        """The rows of `boxes` (best first) that no better box overlaps by more than nms_threshold, as insightface's
        SCRFD.nms keeps them (its +1 pixel areas included)."""
        x1, y1, x2, y2, scores = (boxes[:, i] for i in range(5))
        areas = (x2 - x1 + 1) * (y2 - y1 + 1)
        order = np.argsort(-scores, kind="stable")
        keep: list[int] = []
        while order.size > 0:
            i = int(order[0])
            keep.append(i)
            w = np.maximum(0.0, np.minimum(x2[i], x2[order[1:]]) - np.maximum(x1[i], x1[order[1:]]) + 1)
            h = np.maximum(0.0, np.minimum(y2[i], y2[order[1:]]) - np.maximum(y1[i], y1[order[1:]]) + 1)
            inter = w * h
            overlap = inter / (areas[i] + areas[order[1:]] - inter)
            order = order[np.where(overlap <= self.nms_threshold)[0] + 1]
        return keep

    def _forward(self, canvas: UInt8Image, threshold: float) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Scores (n,), boxes (n, 4) and landmarks (n, 5, 2) of the anchors scoring `threshold` or more, in
        `canvas` coordinates, stride by stride."""
        # RGB in, so no channel swap; the input keeps the canvas's size.
        size, mean = (canvas.shape[1], canvas.shape[0]), (INPUT_MEAN, INPUT_MEAN, INPUT_MEAN)
        blob = np.asarray(cv2.dnn.blobFromImage(canvas, 1.0 / INPUT_STD, size, mean, swapRB=False), dtype=np.float32)
        outs = self.session.run(self.output_names, {self.input_name: blob})
        n = len(self.strides)
        scores_list, boxes_list, kps_list = [], [], []
        for idx, stride in enumerate(self.strides):
            scores, boxes, kps = (np.asarray(outs[idx + k * n]) for k in range(3))
            if self.batched:
                scores, boxes, kps = scores[0], boxes[0], kps[0]
            keep = np.where(scores >= threshold)[0]
            centers = self._anchor_centers(canvas.shape[0] // stride, canvas.shape[1] // stride, stride)[keep]
            scores_list.append(scores[keep])
            boxes_list.append(_distance_to_box(centers, boxes[keep] * stride))
            kps_list.append(_distance_to_points(centers, kps[keep] * stride).reshape((len(keep), kps.shape[1] // 2, 2)))
        return np.vstack(scores_list).ravel(), np.vstack(boxes_list), np.vstack(kps_list)

    def _anchor_centers(self, height: int, width: int, stride: int) -> FloatArray:
        key = (height, width, stride)
        centers = self._centers.get(key)
        if centers is None:
            xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
            grid = np.stack([xs, ys], axis=-1)
            centers = np.repeat((grid * stride).reshape((-1, 2)), self.anchors_per_cell, axis=0)
            if len(self._centers) < MAX_CACHED_GRIDS:
                self._centers[key] = centers
        return centers


def _distance_to_box(centers: FloatArray, distance: FloatArray) -> FloatArray:
    """Boxes (x1, y1, x2, y2) from anchor centers and their distances to the left, top, right and bottom sides."""
    return np.stack(
        [
            centers[:, 0] - distance[:, 0],
            centers[:, 1] - distance[:, 1],
            centers[:, 0] + distance[:, 2],
            centers[:, 1] + distance[:, 3],
        ],
        axis=-1,
    )


def _distance_to_points(centers: FloatArray, distance: FloatArray) -> FloatArray:
    """Landmarks (x0, y0, x1, y1, ...) from anchor centers and their offsets."""
    points = []
    for i in range(0, distance.shape[1], 2):
        points += [centers[:, 0] + distance[:, i], centers[:, 1] + distance[:, i + 1]]
    return np.stack(points, axis=-1)
