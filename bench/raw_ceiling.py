"""Figure 1, the raw ceiling: decode + detect + align + embed in-process on the benchmark photos, no service.

A service cannot diagnose faster than ONNX Runtime runs its models on the same machine; this measures how fast
that is, under several process/thread set-ups, and takes the best as the ceiling (not the naive one):

- seq 1x1: one process, one ONNX Runtime thread, one photo at a time (the single-request latency reference);
- seq 1xN: one process, N intra-op threads without spinning, one photo at a time (lower latency, if any);
- threads Nx1: one process, N Python threads sharing the sessions, one ORT thread each;
- procs Nx1: N processes, one ORT thread each (the known best on CPU: sessions that spin fight over cores);
- procs NxN: N processes, N ORT threads each without spinning (a lone request may use every core);
- naive: one process, ORT's default threads (all cores, spinning), N Python threads.

    .venv/bin/python bench/raw_ceiling.py [--rounds 3] [--workers N]

Other benchmarks import `measure` to pair their service figures with a ceiling measured in the same run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import latency_stats, one_face_photos, scratch_dir, table, write_json

from lookalike.config import Settings
from lookalike.pipeline.pipeline import Pipeline


def load(threads: int) -> Pipeline:
    pipe = Pipeline(Settings(data_dir=scratch_dir("raw"), ort_threads=threads))
    pipe.load()
    return pipe


def run_one(pipe: Pipeline, data: bytes) -> int:
    return len(pipe.analyze(pipe.decode(data)))


def sequential(pipe: Pipeline, photos: list[bytes], rounds: int) -> tuple[float, list[float]]:
    """(photos per second, per-photo seconds)."""
    for data in photos[:3]:
        run_one(pipe, data)  # warm-up: first runs allocate ORT's arenas
    times = []
    t0 = time.perf_counter()
    for _ in range(rounds):
        for data in photos:
            t = time.perf_counter()
            run_one(pipe, data)
            times.append(time.perf_counter() - t)
    return len(times) / (time.perf_counter() - t0), times


def threaded(pipe: Pipeline, photos: list[bytes], rounds: int, workers: int) -> float:
    work = photos * rounds
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda d: run_one(pipe, d), photos[: workers * 2]))
        t0 = time.perf_counter()
        list(pool.map(lambda d: run_one(pipe, d), work))
        return len(work) / (time.perf_counter() - t0)


def _process(args: tuple[list[bytes], int, int, Any, Any]) -> None:
    photos, rounds, threads, barrier, results = args
    pipe = load(threads)
    for data in photos[:3]:
        run_one(pipe, data)
    barrier.wait()
    t0 = time.time()
    n = 0
    for _ in range(rounds):
        for data in photos:
            run_one(pipe, data)
            n += 1
    results.put((t0, time.time(), n))


def processes(photos: list[bytes], rounds: int, workers: int, threads: int = 1) -> float:
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    args = (photos, rounds, threads, barrier, results)
    procs = [ctx.Process(target=_process, args=(args,)) for _ in range(workers)]
    for p in procs:
        p.start()
    spans = [results.get(timeout=900) for _ in procs]
    for p in procs:
        p.join()
    start, end = min(s for s, _, _ in spans), max(e for _, e, _ in spans)
    return sum(n for _, _, n in spans) / (end - start)


def measure(photos: list[bytes], *, rounds: int = 3, workers: int | None = None) -> dict[str, Any]:
    """Every set-up's throughput, the sequential latencies, and the ceiling (the best of each)."""
    workers = workers or os.cpu_count() or 1
    rows: list[dict[str, Any]] = []
    one = load(1)
    rate, times = sequential(one, photos, rounds)
    rows.append({"setup": "seq 1x1", "photos_per_s": round(rate, 1), **latency_stats(times)})
    rows.append({"setup": f"threads {workers}x1", "photos_per_s": round(threaded(one, photos, rounds, workers), 1)})
    del one
    if workers > 1:
        many = load(workers)
        rate, times = sequential(many, photos, rounds)
        rows.append({"setup": f"seq 1x{workers}", "photos_per_s": round(rate, 1), **latency_stats(times)})
        del many
        naive = load(0)
        rows.append(
            {"setup": f"naive (ORT default) {workers}x", "photos_per_s": round(threaded(naive, photos, rounds, 2), 1)}
        )
        del naive
    rows.append({"setup": f"procs {workers}x1", "photos_per_s": round(processes(photos, rounds, workers), 1)})
    if workers > 1:
        # Each process may use every core when alone (latency) and shares them when all are busy (no spinning).
        rate = processes(photos, rounds, workers, threads=workers)
        rows.append({"setup": f"procs {workers}x{workers}", "photos_per_s": round(rate, 1)})
    best = max(rows, key=lambda r: r["photos_per_s"])
    fastest = min((r for r in rows if "p50_ms" in r), key=lambda r: r["p50_ms"])
    return {
        "setups": rows,
        "ceiling": {
            "photos_per_s": best["photos_per_s"],
            "throughput_setup": best["setup"],
            "p50_ms": fastest["p50_ms"],
            "p95_ms": fastest["p95_ms"],
            "latency_setup": fastest["setup"],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="passes over the benchmark photos per set-up")
    parser.add_argument("--workers", type=int, default=None, help="threads/processes (default: cores)")
    args = parser.parse_args()
    paths = one_face_photos()
    photos = [p.read_bytes() for p in paths]
    result = measure(photos, rounds=args.rounds, workers=args.workers)
    print(f"raw ceiling on {len(photos)} one-face photos x {args.rounds} rounds\n")
    print(table(result["setups"], ["setup", "photos_per_s", "p50_ms", "p95_ms"]))
    c = result["ceiling"]
    print(
        f"\nceiling: {c['photos_per_s']} photos/s ({c['throughput_setup']}), "
        f"p50 {c['p50_ms']} ms ({c['latency_setup']})"
    )
    print("wrote", write_json("raw_ceiling", {"photos": len(photos), "rounds": args.rounds, **result}))


if __name__ == "__main__":
    main()
