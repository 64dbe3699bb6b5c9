"""Duplicate photos: the same bytes (sha256) or the same picture re-encoded or resized (a perceptual hash)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# dHash bits that may differ between two encodings of one picture (of 64); unrelated photos differ by ~32.
NEAR_DUPLICATE_BITS = 6


def dhash(rgb: npt.NDArray[np.uint8]) -> str:
    """64-bit difference hash of the picture, as 16 hex digits."""
    import cv2

    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def is_near_duplicate(phash: str, known: list[str]) -> bool:
    return any(distance(phash, other) <= NEAR_DUPLICATE_BITS for other in known)
