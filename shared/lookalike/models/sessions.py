"""ONNX Runtime session factory: the one place that decides providers and threads."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnxruntime as ort

# Preference order when the settings name none: the fastest provider the runtime offers, CPU as fallback.
PREFERRED = ("CUDAExecutionProvider", "CPUExecutionProvider")
CUDA_OPTIONS = {
    # Grow the memory arena by what a run asks for, not by doubling: a worker stays near its largest batch
    # instead of holding twice that, so more workers share one card.
    "arena_extend_strategy": "kSameAsRequested",
    # EXHAUSTIVE (ORT's default) times every convolution algorithm for each new input shape; the embedder sees a
    # new shape for each batch size the batcher forms, and would stall seconds on each first time.
    "cudnn_conv_algo_search": "HEURISTIC",
    "do_copy_in_default_stream": "1",
}


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


def provider_args(providers: Sequence[str]) -> list[Any]:
    """Providers as ONNX Runtime takes them, CUDA with the options above. Device 0 of those the process sees:
    a worker is given its card by CUDA_VISIBLE_DEVICES (docker-compose.gpu.yml)."""
    return [(p, dict(CUDA_OPTIONS)) if p == "CUDAExecutionProvider" else p for p in providers]


def create_session(path: Path, *, providers: Sequence[str], threads: int) -> ort.InferenceSession:
    on_cpu = providers[0] == "CPUExecutionProvider"
    return ort.InferenceSession(
        str(path), sess_options=session_options(threads=threads, on_cpu=on_cpu), providers=provider_args(providers)
    )
