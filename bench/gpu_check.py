"""Device check: faces/s of the detector and the embedder at batch 1, 8, 32 and 128, the service's code paths
versus raw ONNX Runtime, on whatever accelerator ONNX Runtime offers here (CUDA when present, else the CPU).

Made for a short loan of a GPU: it first prints what ONNX Runtime offers, then measures for about a minute per
model pack and stops well inside 5 minutes. Raw = session.run on ready input (with IO binding on CUDA: input
and output stay on the device); service = lookalike's FaceEmbedder.embed / FaceDetector.detect, preprocessing
included, on sessions built by lookalike.models.sessions (the provider options the worker uses).

    python bench/gpu_check.py [--pack buffalo_l] [--seconds 4] [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FACES, table, write_json

from lookalike.config import Settings
from lookalike.models.packs import resolve_pack
from lookalike.models.sessions import choose_providers, create_session
from lookalike.pipeline.batcher import EmbedBatcher
from lookalike.pipeline.detector import FaceDetector
from lookalike.pipeline.embedder import FaceEmbedder


def rate(fn: Callable[[], Any], items: int, seconds: float) -> float:
    """Items per second of fn() over about `seconds` (after two warm-up calls)."""
    fn()
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n * items / (time.perf_counter() - t0)


def raw_runner(session: ort.InferenceSession, blob: np.ndarray, on_cuda: bool) -> Callable[[], Any]:
    name = session.get_inputs()[0].name
    if not on_cuda:
        return lambda: session.run(None, {name: blob})
    binding = session.io_binding()
    binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(blob, "cuda", 0))
    for out in session.get_outputs():
        binding.bind_output(out.name, "cuda", 0)
    return lambda: session.run_with_iobinding(binding)


def batched_rate(batcher: EmbedBatcher, threads: int, seconds: float) -> float:
    """Faces/s when `threads` threads each embed one face at a time through the batcher."""
    face = np.random.default_rng(1).integers(0, 255, (112, 112, 3), dtype=np.uint8)
    stop = time.perf_counter() + seconds
    counts = [0] * threads

    def loop(k: int) -> None:
        while time.perf_counter() < stop:
            batcher.embed([face])
            counts[k] += 1

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(loop, range(threads)))
    return sum(counts) / (time.perf_counter() - t0)


def device_info() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        return out.stdout.strip() or "no GPU listed"
    except (OSError, subprocess.TimeoutExpired):
        return "nvidia-smi not found"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", default="buffalo_l")
    parser.add_argument("--seconds", type=float, default=4.0, help="per measurement")
    parser.add_argument("--quick", action="store_true", help="batches 1 and 8 only, 1 s each (a smoke run)")
    args = parser.parse_args()
    batches = [1, 8] if args.quick else [1, 8, 32, 128]
    seconds = 1.0 if args.quick else args.seconds
    print("onnxruntime", ort.__version__, "providers:", ort.get_available_providers())
    print("device:", device_info())
    settings = Settings(model_pack=args.pack)
    try:
        pack = resolve_pack(args.pack, model_root=settings.model_root)
    except Exception as exc:  # offline: buffalo_l cannot be fetched; the shipped pack still tells a lot
        print(f"{args.pack} unavailable ({exc}); using buffalo_s")
        pack = resolve_pack("buffalo_s", model_root=settings.model_root)
    providers = choose_providers(settings.providers)
    on_cuda = providers[0] == "CUDAExecutionProvider"
    print("pack:", pack.name, "providers used:", providers)

    rng = np.random.default_rng(0)
    photo = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(sorted(FACES.glob("probes/*/*.jpg"))[0]))
    embedder = FaceEmbedder(pack.embedder, providers=providers, threads=0, batch=max(batches))
    detector = FaceDetector(pack.detector, providers=providers, threads=0)
    emb_session = create_session(pack.embedder, providers=providers, threads=0)
    det_session = create_session(pack.detector, providers=providers, threads=0)
    rows = []
    for batch in batches:
        crops = [rng.integers(0, 255, (112, 112, 3), dtype=np.uint8) for _ in range(batch)]
        blob = ((np.stack(crops).astype(np.float32).transpose(0, 3, 1, 2) - 127.5) / 127.5).copy()
        raw = rate(raw_runner(emb_session, blob, on_cuda), batch, seconds)
        service = rate(lambda c=crops: embedder.embed(c), batch, seconds)
        rows.append(
            {
                "model": "embedder",
                "batch": batch,
                "raw_faces_per_s": round(raw, 1),
                "service_faces_per_s": round(service, 1),
                "ratio": round(service / raw, 3),
            }
        )
    # Dynamic batching as a GPU worker would run it: `batch` threads, one face per request, one batcher.
    for row in [r for r in rows if r["model"] == "embedder" and r["batch"] > 1]:
        batch = int(row["batch"])
        batched = batched_rate(EmbedBatcher(embedder, max_faces=batch, wait_s=0.002), batch, seconds)
        rows.append(
            {
                "model": "embedder via batcher, 1 face x threads",
                "batch": batch,
                "raw_faces_per_s": row["raw_faces_per_s"],
                "service_faces_per_s": round(batched, 1),
                "ratio": round(batched / row["raw_faces_per_s"], 3),
            }
        )
    for batch in [b for b in batches if b <= 32]:
        blob = rng.standard_normal((batch, 3, 640, 640)).astype(np.float32)
        raw = rate(raw_runner(det_session, blob, on_cuda), batch, seconds)
        # The service detects one photo per call (its retries and the large pass are per photo).
        service = rate(lambda: detector.detect(photo, retry=False), 1, seconds) if batch == 1 else float("nan")
        rows.append(
            {
                "model": "detector 640",
                "batch": batch,
                "raw_faces_per_s": round(raw, 1),
                "service_faces_per_s": round(service, 1),
                "ratio": round(service / raw, 3),
            }
        )
    print(table(rows, ["model", "batch", "raw_faces_per_s", "service_faces_per_s", "ratio"]))
    print("wrote", write_json("gpu_check", {"pack": pack.name, "providers": providers, "rows": rows}))


if __name__ == "__main__":
    main()
