"""Several photos of one person, combined into one query.

One photo's answer carries that photo's pose, light and expression; the mean of several photos' embeddings
carries more of the person (on lfw_lookalike strangers, two photos combined agree with two others on the top
member more often than two single photos do: docs/matching.md). The photos must show one person: each main face
is compared with the others combined, and one that falls below the bar is named.
"""

from __future__ import annotations

import numpy as np

from lookalike.pipeline.types import FloatArray


def combine(embeddings: FloatArray) -> FloatArray:
    """The unit mean of unit embeddings: the person's query."""
    mean = embeddings.mean(axis=0)
    out: FloatArray = (mean / (np.linalg.norm(mean) + 1e-12)).astype(np.float32)
    return out


def odd_one_out(embeddings: FloatArray, *, min_similarity: float) -> tuple[int, float] | None:
    """(position, similarity) of the photo least like the others combined, when it is below `min_similarity`;
    None when they agree. With two photos there is no majority: the second one is named (the first is the
    reference the user started from)."""
    n = len(embeddings)
    if n < 2:
        return None
    total = embeddings.sum(axis=0)
    sims = np.empty(n, np.float32)
    for i in range(n):
        rest = total - embeddings[i]
        sims[i] = float(embeddings[i] @ rest) / (float(np.linalg.norm(rest)) + 1e-12)
    worst = n - 1 if n == 2 else int(np.argmin(sims))
    return (worst, float(sims[worst])) if sims[worst] < min_similarity else None
