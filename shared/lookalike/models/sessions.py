"""ONNX Runtime session factory: the one place that decides providers and threads."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

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
    model = (cpu_graph(path) if on_cpu else None) or str(path)
    return ort.InferenceSession(
        model, sess_options=session_options(threads=threads, on_cpu=on_cpu), providers=provider_args(providers)
    )


def cpu_graph(path: Path) -> bytes | None:
    """The model with every per-channel PRelu written as slope*x + (1-slope)*relu(x), or None if it has none.

    ONNX Runtime's CPU provider runs convolutions in a blocked channel layout and fuses what follows them when
    it can; PRelu it cannot, so each one runs unblocked between two layout reorders: 40% of w600k_mbf's time.
    Written as two 1x1 depthwise convolutions (per-channel products) and an add, it stays blocked and fuses:
    the embedder runs in 0.6x the time. The same function, to float rounding (1e-6 of the embedding).
    """
    model = onnx.load(str(path))
    graph = model.graph
    constants = {i.name: i for i in graph.initializer}
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        slope_init = constants.get(node.input[1]) if node.op_type == "PRelu" else None
        slope = numpy_helper.to_array(slope_init).astype(np.float32) if slope_init is not None else None
        # Per channel only (shape (C, 1, 1)): a scalar or other broadcast stays a PRelu.
        if slope is None or slope.ndim != 3 or slope.shape[1:] != (1, 1) or slope.shape[0] < 2:
            nodes.append(node)
            continue
        x, y, channels = node.input[0], node.output[0], slope.shape[0]
        graph.initializer.extend(
            [
                numpy_helper.from_array(slope.reshape(channels, 1, 1, 1), f"{y}/slope"),
                numpy_helper.from_array((1.0 - slope).reshape(channels, 1, 1, 1), f"{y}/rest"),
            ]
        )
        depthwise = {"group": channels, "kernel_shape": [1, 1]}
        nodes += [
            helper.make_node("Relu", [x], [f"{y}/relu"]),
            helper.make_node("Conv", [f"{y}/relu", f"{y}/rest"], [f"{y}/positive"], **depthwise),
            helper.make_node("Conv", [x, f"{y}/slope"], [f"{y}/linear"], **depthwise),
            helper.make_node("Add", [f"{y}/linear", f"{y}/positive"], [y]),
        ]
    if len(nodes) == len(graph.node):
        return None
    del graph.node[:]
    graph.node.extend(nodes)
    # The PRelu slopes are unused now; dropped, so ONNX Runtime has nothing to warn about.
    used = {i for n in graph.node for i in n.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return bytes(model.SerializeToString())
