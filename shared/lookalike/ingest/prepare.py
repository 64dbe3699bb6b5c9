"""The model work of ingestion, on a thread pool: decode, fingerprint, detect, embed and assess each candidate
picture while the job's own thread stores the ones before it.

ONNX Runtime releases the GIL, so `workers` threads with one ORT thread each keep as many cores busy as the
diagnose workers do; a photo at a time left all but one core idle during a scrape or an upload.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from lookalike.errors import ImageError
from lookalike.imaging import ImageFormat
from lookalike.ingest.dedupe import dhash
from lookalike.ingest.sources import Candidate
from lookalike.pipeline.pipeline import AnalyzedFace, Pipeline
from lookalike.pipeline.quality import FaceQuality, assess_in_image

# How many pictures per worker may be analysed ahead of the one the job stores next.
AHEAD_PER_WORKER = 4
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Prepared:
    """A candidate picture analysed: what storing and curating it needs, without its pixels."""

    candidate: Candidate
    digest: str
    format: ImageFormat | None = None
    size: tuple[int, int] = (0, 0)
    phash: str = ""
    faces: tuple[AnalyzedFace, ...] = ()
    qualities: tuple[FaceQuality, ...] = ()
    error: ImageError | None = None


def prepare(pipeline: Pipeline, candidate: Candidate, digest: str) -> Prepared:
    assert candidate.data is not None
    try:
        image, faces = pipeline.read(candidate.data)
    except ImageError as exc:
        return Prepared(candidate, digest, error=exc)
    return Prepared(
        candidate,
        digest,
        format=image.format,
        size=image.original_size,
        phash=dhash(image.rgb),
        faces=tuple(faces),
        qualities=tuple(assess_in_image(image, f.detection) for f in faces),
    )


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ordered_map(fn: Callable[[T], R], items: Iterable[T], *, workers: int) -> Iterator[R]:
    """fn over items on `workers` threads, results in order, at most 4 x workers items ahead of the consumer
    (a scrape's candidates are downloads: reading them all up front would hold every picture at once). Fewer
    let one slow photo (a turned face is detected up to 4 times) idle the other workers while it holds the head."""
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="lookalike-prepare") as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= AHEAD_PER_WORKER * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
