"""ONNX Runtime session factory: the one place that decides providers and threads."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnxruntime as ort

# Preference order when the settings name none: the fastest provider the runtime offers, CPU as fallback.
PREFERRED = ("CUDAExecutionProvider", "CPUExecutionProvider")


def choose_providers(requested: Sequence[str] = (), available: Sequence[str] | None = None) -> list[str]:
    available = list(ort.get_available_providers() if available is None else available)
    if requested:
        missing = [p for p in requested if p not in available]
        if missing:
            raise ValueError(f"providers {missing} are not available; ONNX Runtime offers {available}")
        return list(requested)
    chosen = [p for p in PREFERRED if p in available]
    return chosen or available[:1]


def session_options(*, threads: int, on_cpu: bool) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    if on_cpu and threads > 0:
        # one pinned thread per worker: spinning sessions in several workers fight over the same cores
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


def create_session(path: Path, *, providers: Sequence[str], threads: int) -> ort.InferenceSession:
    on_cpu = providers[0] == "CPUExecutionProvider"
    provider_args: list[Any] = list(providers)
    return ort.InferenceSession(
        str(path), sess_options=session_options(threads=threads, on_cpu=on_cpu), providers=provider_args
    )
