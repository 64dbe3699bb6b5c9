"""Dynamic batching of faces across concurrent jobs, for the embedder on a GPU.

Worker threads each hold one photo's aligned faces; one at a time they would send the GPU batches of 1-3 faces,
paying a kernel launch and a host-device copy for each. The batcher queues them instead: the first request opens
a batch, which closes when `max_faces` faces are in or `wait_s` after it opened, and one thread runs it. Every
request then gets its own rows back, or the batch's error. Off by default (LOOKALIKE_BATCH_WAIT_MS=0): on a CPU
with one ONNX Runtime thread per worker, a batch run on one thread only makes the other workers wait.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from lookalike.pipeline.embedder import FaceEmbedder
from lookalike.pipeline.types import FloatArray

log = logging.getLogger(__name__)


@dataclass
class _Request:
    crops: list[npt.NDArray[np.uint8]]
    done: Future[FloatArray] = field(default_factory=Future)


class EmbedBatcher:
    """Quacks like FaceEmbedder for `embed`; safe to call from any number of threads."""

    def __init__(self, embedder: FaceEmbedder, *, max_faces: int, wait_s: float) -> None:
        self.embedder = embedder
        self.size = embedder.size
        self.dim = embedder.dim
        self.max_faces = max(1, max_faces)
        self.wait_s = wait_s
        self.runs = 0  # batches run, for tests and metrics
        self.requests = 0
        self._queue: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="lookalike-embed-batcher", daemon=True)
        self._thread.start()

    def embed(self, faces: Sequence[npt.NDArray[np.uint8]]) -> FloatArray:
        if not faces:
            return np.zeros((0, self.dim), dtype=np.float32)
        request = _Request(list(faces))
        self._queue.put(request)
        return request.done.result()

    def _collect(self) -> list[_Request]:
        batch = [self._queue.get()]
        n = len(batch[0].crops)
        closes = time.monotonic() + self.wait_s
        while n < self.max_faces:
            remaining = closes - time.monotonic()
            try:
                request = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            batch.append(request)
            n += len(request.crops)
        return batch

    def _serve(self) -> None:
        while True:
            batch = self._collect()
            self.runs += 1
            self.requests += len(batch)
            try:
                rows = self.embedder.embed([crop for request in batch for crop in request.crops])
            except Exception as exc:  # every waiter gets the error; the batcher lives on for the next batch
                log.exception("an embedding batch of %d requests failed", len(batch))
                for request in batch:
                    request.done.set_exception(exc)
                continue
            start = 0
            for request in batch:
                request.done.set_result(rows[start : start + len(request.crops)])
                start += len(request.crops)
