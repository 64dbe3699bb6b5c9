"""Figures 2 and 3: the service end to end over HTTP, as ratios to the raw ceiling measured in the same run.

- embedded: `lookalike serve` (one process: gateway + in-process worker pool, SQLite, local index files);
- distributed: `lookalike serve` + `lookalike worker --concurrency 1` x W on loopback Redis and Postgres.

For 1 client and for N concurrent clients (each posting the benchmark photos in turn): throughput and p50/p95
latency of POST /diagnose, then service / ceiling. Targets (issue 6): embedded throughput with concurrency
>= 0.85x the ceiling, single-request p50 <= 1.15x raw + 15 ms; distributed with 2 workers >= 0.8x.

    .venv/bin/python bench/service_http.py --mode embedded [--clients 1,4] [--requests 150] [--layouts 2:1:1]
    .venv/bin/python bench/service_http.py --mode distributed [--workers 2]
    .venv/bin/python bench/service_http.py --baseline /tmp/today [--pairs 3] [--clients 4] [--layouts 1:2:1]

With --baseline (a git worktree of another commit), the embedded service of that commit and of this tree are run
in turn, `--pairs` times each, alternating which goes first; each run reports photos/s and the server's CPU per
photo (its process's user + system time over the load), and the table gives new / baseline per pair.

The distributed mode needs Redis and Postgres (LOOKALIKE_BENCH_REDIS_URL, default redis://127.0.0.1:6379/5;
LOOKALIKE_BENCH_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/postgres, where it creates and
drops a database of its own).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import raw_ceiling
from common import REPO, latency_stats, one_face_photos, scratch_dir, table, write_json

LOOKALIKE = str(Path(sys.executable).with_name("lookalike"))
REDIS_URL = os.environ.get("LOOKALIKE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
ADMIN_URL = os.environ.get("LOOKALIKE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BENCH_DB = "lookalike_bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")}
    # Every client is 127.0.0.1: the per-client limits go far above the load (they are still checked on every
    # request, so their cost is in the figures); the queue cap keeps its default.
    limits = {"LOOKALIKE_DIAGNOSE_RATE_LIMIT": "1000000", "LOOKALIKE_DIAGNOSE_CLIENT_CONCURRENCY": "1000"}
    env.update({"LOOKALIKE_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", **limits, **extra})
    return env


def fresh_postgres() -> str:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    return ADMIN_URL.rsplit("/", 1)[0] + f"/{BENCH_DB}"


def load_demo(env: dict[str, str], cwd: Path) -> None:
    command = [LOOKALIKE, "ingest", str(REPO / "demo" / "gallery"), "--group", "sakamichi"]
    subprocess.run(command, env=env, cwd=cwd, check=True, capture_output=True)


@contextmanager
def started(
    commands: dict[str, list[str]], env: dict[str, str], cwd: Path, url: str
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Start every command, wait for the gateway's /readyz, stop them all afterwards."""
    procs = {}
    try:
        for name, command in commands.items():
            log = (cwd / f"{name}.log").open("wb")
            procs[name] = subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while True:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    raise SystemExit(f"{name} exited: {(cwd / f'{name}.log').read_text()[-3000:]}")
            try:
                if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the service did not come up")
            time.sleep(0.3)
        yield procs
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def load(url: str, photos: list[bytes], *, clients: int, requests: int) -> dict[str, Any]:
    """`requests` POST /diagnose spread over `clients` concurrent connections."""

    def client(k: int) -> list[float]:
        times = []
        with httpx.Client(base_url=url, timeout=120) as http:
            for i in range(k, requests, clients):
                data = photos[i % len(photos)]
                t = time.perf_counter()
                response = http.post("/diagnose", files={"image": ("p.jpg", data, "image/jpeg")})
                times.append(time.perf_counter() - t)
                if response.status_code != 200:
                    raise SystemExit(f"POST /diagnose answered {response.status_code}: {response.text[:300]}")
        return times

    warm = min(len(photos), 2 * clients)
    with ThreadPoolExecutor(clients) as pool:
        with httpx.Client(base_url=url, timeout=120) as http:
            for data in photos[:warm]:
                http.post("/diagnose", files={"image": ("p.jpg", data, "image/jpeg")})
        t0 = time.perf_counter()
        times = [t for chunk in pool.map(client, range(clients)) for t in chunk]
        wall = time.perf_counter() - t0
    return {"clients": clients, "photos_per_s": round(len(times) / wall, 1), **latency_stats(times)}


def server_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its reaped children (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def ab_runs(args: argparse.Namespace, photos: list[bytes]) -> None:
    """The baseline commit's embedded service against this tree's, alternating, per layout and client count."""
    code = args.baseline.resolve()
    rows = []
    for layout in args.layouts.split(","):
        for pair in range(args.pairs):
            for side in ("baseline", "new") if pair % 2 == 0 else ("new", "baseline"):
                # The baseline's own lookalike and services packages go first on the path, ahead of this tree's.
                path = f"{code / 'shared'}:{code}" if side == "baseline" else None
                commands, env, work, url = service("embedded", args.workers, layout, pythonpath=path)
                with started(commands, env, work, url) as procs:
                    for clients in (int(c) for c in args.clients.split(",")):
                        cpu = server_cpu_s(procs["gateway"].pid)
                        row = {"layout": layout, "pair": pair, "side": side}
                        row.update(load(url, photos, clients=clients, requests=args.requests))
                        spent = server_cpu_s(procs["gateway"].pid) - cpu
                        served = args.requests + min(len(photos), 2 * clients)  # load() warms up first
                        row["server_cpu_ms_per_photo"] = round(1000 * spent / served, 1)
                        rows.append(row)
                shutil.rmtree(work, ignore_errors=True)
    ratios = []
    for r in rows:
        if r["side"] == "new":
            base = next(
                b for b in rows if b["side"] == "baseline" and all(b[k] == r[k] for k in ("layout", "pair", "clients"))
            )
            ratios.append(
                {
                    "layout": r["layout"],
                    "pair": r["pair"],
                    "clients": r["clients"],
                    "baseline_photos_per_s": base["photos_per_s"],
                    "new_photos_per_s": r["photos_per_s"],
                    "throughput_ratio": round(r["photos_per_s"] / base["photos_per_s"], 3),
                    "baseline_cpu_ms": base["server_cpu_ms_per_photo"],
                    "new_cpu_ms": r["server_cpu_ms_per_photo"],
                    "cpu_ratio": round(base["server_cpu_ms_per_photo"] / r["server_cpu_ms_per_photo"], 3),
                    "baseline_p50_ms": base["p50_ms"],
                    "new_p50_ms": r["p50_ms"],
                }
            )
    print(f"embedded service, {code.name} (baseline) vs this tree, {args.requests} requests per run\n")
    print(table(ratios, list(ratios[0])))
    print("wrote", write_json("service_ab", {"baseline": str(code), "runs": rows, "pairs": ratios}))


def service(
    mode: str, workers: int, layout: str, *, pythonpath: str | None = None
) -> tuple[dict[str, list[str]], dict[str, str], Path, str]:
    work = scratch_dir(mode)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = [LOOKALIKE, "serve", "--host", "127.0.0.1", "--port", str(port)]
    if mode == "embedded":
        processes, threads, ort_threads, *lone = layout.split(":")
        env = base_env(
            work / "data",
            LOOKALIKE_PROCESSES=processes,
            LOOKALIKE_WORKERS=threads,
            LOOKALIKE_ORT_THREADS=ort_threads,
        )
        if lone:  # a 4th field: threads of a lone photo (1: never widen; default: the CPU count)
            env["LOOKALIKE_LONE_THREADS"] = lone[0]
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        load_demo(env, work)
        return {"gateway": serve}, env, work, url
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    token = "bench-" + "0" * 32
    env = base_env(
        work / "gateway",
        LOOKALIKE_DATABASE_URL=fresh_postgres(),
        LOOKALIKE_BROKER_URL=REDIS_URL,
        LOOKALIKE_ADMIN_TOKEN=token,
        LOOKALIKE_DIAGNOSE_WAIT_S="120",
    )
    load_demo(env, work)
    commands = {"gateway": serve}
    for w in range(workers):
        commands[f"worker-{w}"] = [LOOKALIKE, "worker", "--concurrency", "1", "--hostname", f"bench{w}@%h"]
    return commands, env, work, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["embedded", "distributed"], default="embedded")
    parser.add_argument("--clients", default=f"1,{2 * (os.cpu_count() or 1)}", help="comma-separated")
    parser.add_argument("--requests", type=int, default=150, help="per client count")
    parser.add_argument("--workers", type=int, default=2, help="distributed: diagnose worker processes")
    parser.add_argument(
        "--layouts",
        default="1:2:1,2:2:1,2:1:1",
        help="embedded: processes:worker threads:ORT threads[:lone threads], comma-separated (default: the candidates)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="raw ceiling: passes over the photos")
    parser.add_argument("--baseline", type=Path, help="A/B against the embedded service of this worktree")
    parser.add_argument("--pairs", type=int, default=3, help="--baseline: runs of each side")
    args = parser.parse_args()
    photos = [p.read_bytes() for p in one_face_photos()]
    if args.baseline:
        ab_runs(args, photos)
        return

    raw = raw_ceiling.measure(photos, rounds=args.rounds)
    ceiling = raw["ceiling"]
    layouts = args.layouts.split(",") if args.mode == "embedded" else [f"{args.workers} workers"]
    rows = []
    for layout in layouts:
        commands, env, work, url = service(args.mode, args.workers, layout)
        with started(commands, env, work, url):
            for clients in (int(c) for c in args.clients.split(",")):
                row = {"layout": layout, **load(url, photos, clients=clients, requests=args.requests)}
                row["throughput_ratio"] = round(row["photos_per_s"] / ceiling["photos_per_s"], 3)
                row["p50_limit_ms"] = round(1.15 * ceiling["p50_ms"] + 15, 1)
                rows.append(row)
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.mode} service vs raw ceiling ({ceiling['photos_per_s']} photos/s, p50 {ceiling['p50_ms']} ms)\n")
    print(table(raw["setups"], ["setup", "photos_per_s", "p50_ms", "p95_ms"]))
    print()
    columns = ["layout", "clients", "photos_per_s", "throughput_ratio", "p50_ms", "p95_ms", "p50_limit_ms"]
    print(table(rows, columns))
    name = f"service_{args.mode}"
    print("wrote", write_json(name, {"mode": args.mode, "workers": args.workers, "raw": raw, "service": rows}))


if __name__ == "__main__":
    main()
