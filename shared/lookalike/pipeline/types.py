"""Values passed between pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Detection:
    """One face in the coordinates of the image it was detected in."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    score: float
    landmarks: FloatArray  # (5, 2): eyes, nose, mouth corners

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    def scaled(self, factor: float) -> Detection:
        """The same face in an image `factor` times the size."""
        return Detection(
            box=(self.box[0] * factor, self.box[1] * factor, self.box[2] * factor, self.box[3] * factor),
            score=self.score,
            landmarks=(self.landmarks * factor).astype(np.float32),
        )


def main_face(detections: list[Detection], width: int, height: int) -> int:
    """Index of the photo's subject: a large face near the centre (LFW frames often show others behind)."""
    cx, cy = width / 2, height / 2

    def weight(d: Detection) -> float:
        fx, fy = (d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2
        return d.width * d.height - 2.0 * ((fx - cx) ** 2 + (fy - cy) ** 2)

    return max(range(len(detections)), key=lambda i: weight(detections[i]))
