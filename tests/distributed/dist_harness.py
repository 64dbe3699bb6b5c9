"""Harness of the distributed tests: the real Redis and PostgreSQL on loopback, and real gateway and Celery worker
processes started through the `lookalike` CLI, each in a process group of its own with its output in a log file.

Nothing here mocks anything: the tests drive the processes over HTTP, read the jobs table with psycopg, look into
Redis with redis-py, and hurt the processes and servers with signals and the servers' own control commands.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import io
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
import redis
from leak_scan import PNG_MAGIC
from leak_scan import mark as mark  # re-exported: the distributed tests mark their uploads
from psycopg.rows import dict_row

REPO = Path(__file__).resolve().parents[2]
FACES = REPO / "tests" / "data" / "faces"
DEMO = REPO / "demo" / "gallery"
GROUP = "sakamichi"
REDIS_URL = os.environ.get("LOOKALIKE_TEST_REDIS_URL", "redis://127.0.0.1:6379/7")
ADMIN_TOKEN = "distributed-test-admin-token-" + "0123456789abcdef" * 2
LOOKALIKE = str(Path(sys.executable).parent / "lookalike")
START_TIMEOUT_S = 120.0
MAX_ATTEMPTS = 3
FINISHED = ("done", "failed")

# The test photos the diagnoses use: members, strangers, group photos and photos without a face.
SOURCES: list[Path] = sorted(
    p for sub in ("probes", "strangers", "group", "noface") for p in (FACES / sub).rglob("*.jpg")
)


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def require(condition: bool, why: str) -> None:
    """Skip where the machine lacks what a test needs, except under CI=true, where it must be there."""
    if not condition:
        if in_ci():
            pytest.fail(f"CI requires it: {why}")
        pytest.skip(why)


# --------------------------------------------------------------------------- Redis and PostgreSQL servers


def redis_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 6379


def redis_ping(url: str, timeout: float = 1.0) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def stop_redis(url: str) -> None:
    host, port = redis_address(url)
    subprocess.run(
        ["redis-cli", "-h", host, "-p", str(port), "shutdown", "nosave"], capture_output=True, timeout=30, check=False
    )
    wait_for(lambda: not redis_ping(url, 0.2), 20, "Redis to stop")


def start_redis(url: str) -> None:
    _, port = redis_address(url)
    # The way the CI machine runs it: a daemon without persistence.
    command = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", str(port)]
    command += ["--save", "", "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"]
    subprocess.run(
        command,
        capture_output=True,
        timeout=30,
        check=True,
    )
    wait_for(lambda: redis_ping(url, 0.5), 30, "Redis to start")


def ensure_redis(url: str) -> None:
    """Redis answers again (started the CI way if it does not)."""
    if not redis_ping(url):
        start_redis(url)


def _pg_version() -> str:
    return sorted(os.listdir("/etc/postgresql"))[-1]


def pg_ready(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def stop_postgres() -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", _pg_version(), "main", "stop", "-m", "fast"],
        capture_output=True,
        timeout=60,
        check=True,
    )


def start_postgres(url: str) -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", _pg_version(), "main", "start"],
        capture_output=True,
        timeout=60,
        check=False,  # "already running" is fine
    )
    wait_for(lambda: pg_ready(url), 60, "PostgreSQL to start")


def ensure_postgres(url: str) -> None:
    if not pg_ready(url):
        start_postgres(url)


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------- processes


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgid) of a live process, or None."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[2])


def _live_pids() -> Iterator[tuple[int, int, int]]:
    """(pid, ppid, pgid) of every process that is not a zombie."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None and stat[0] not in ("Z", "X"):
                yield int(entry), stat[1], stat[2]


def alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


@dataclass
class Proc:
    """One started command and its process group (the command's pid is the group id)."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def children(self) -> list[int]:
        return sorted(pid for pid, ppid, _ in _live_pids() if ppid == self.pid)

    def group(self) -> list[int]:
        return sorted(pid for pid, _, pgid in _live_pids() if pgid == self.pid)

    def signal_group(self, sig: int) -> None:
        # Only while some process of the group lives: a reaped group's id may belong to someone else later.
        if self.group():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace_s: float = 6.0) -> None:
        """TERM the whole group, then KILL whatever is left of it; always reaps the command."""
        self.signal_group(signal.SIGCONT)  # a stopped group cannot act on TERM
        self.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and (self.running() or self.group()):
            time.sleep(0.1)
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)
        if self in _started:
            _started.remove(self)


def stop_all(procs: list[Proc], grace_s: float = 6.0) -> None:
    """TERM every group at once, then KILL what is left after the grace: the processes shut down side by side
    (one after the other, each Celery worker's warm shutdown added seconds to every cluster's teardown)."""
    for proc in procs:
        proc.signal_group(signal.SIGCONT)  # a stopped group cannot act on TERM
        proc.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(proc.running() or proc.group() for proc in procs):
        time.sleep(0.1)
    for proc in procs:
        proc.stop(grace_s=0)


_started: list[Proc] = []


@atexit.register
def _kill_leftovers() -> None:  # the fixtures stop everything; this covers an interrupted run
    for proc in list(_started):
        proc.signal_group(signal.SIGCONT)
        proc.signal_group(signal.SIGKILL)


def spawn(name: str, args: list[str], *, env: dict[str, str], cwd: Path, logdir: Path) -> Proc:
    log = logdir / f"{name}.log"
    with log.open("ab") as out:
        popen = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a process group of its own: stopped as a whole, children included
        )
    proc = Proc(name, popen, log)
    _started.append(proc)
    return proc


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --------------------------------------------------------------------------- uploads


def noise_png(side: int, block: int = 8, seed: int = 0) -> bytes:
    """A `side` x `side` PNG of blocky noise: few bytes (no upload cap) but slow to decode and search for faces."""
    import numpy as np
    from PIL import Image

    small = np.random.default_rng(seed).integers(0, 256, (side // block, side // block, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(small).resize((side, side), Image.Resampling.NEAREST).save(buf, format="PNG")
    return buf.getvalue()


def upscaled_png(path: Path, side: int) -> bytes:
    """The photo enlarged to `side` x `side`, as a PNG: decoded in full (a JPEG this size is decoded at 1/2 or
    less), so a job takes long enough to be caught running (0.2 s at 2400 on one thread, a JPEG 0.06 s)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.open(path).convert("RGB").resize((side, side)).save(buf, format="PNG")
    return buf.getvalue()


def comparable(result: dict[str, Any]) -> dict[str, Any]:
    """A diagnosis without its timings (the only part that differs from run to run)."""
    return {k: v for k, v in result.items() if k != "timings_ms"}


def worker_pid(worker: str | None) -> int | None:
    if not worker or ":" not in worker:
        return None
    host, pid = worker.rsplit(":", 1)
    return int(pid) if host == socket.gethostname() else None


# --------------------------------------------------------------------------- the deployment


@dataclass
class Stack:
    """What the whole session shares: a database of its own with the demo gallery, and the test Redis db."""

    database_url: str
    redis_url: str
    ingest_dir: Path  # the data dir of the "ingest host": CLI ingest, gateway and ingest worker
    token_prefix: str = field(default_factory=lambda: secrets.token_hex(6))

    def env(self, data_dir: Path, **extra: str) -> dict[str, str]:
        # Only what the test sets: no LOOKALIKE_* of the caller's shell leaks into the processes. The abuse limits
        # are off: hundreds of jobs come from one address and pile up while workers die (tests/hardening tests them).
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")}
        env.update(
            {
                "LOOKALIKE_DATABASE_URL": self.database_url,
                "LOOKALIKE_BROKER_URL": self.redis_url,
                "LOOKALIKE_DATA_DIR": str(data_dir),
                "LOOKALIKE_ADMIN_TOKEN": ADMIN_TOKEN,
                "LOOKALIKE_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
                "LOOKALIKE_RECONCILE_AFTER_S": "3",
                "LOOKALIKE_RECONCILE_EVERY_S": "1",
                "LOOKALIKE_DIAGNOSE_WAIT_S": "60",
                "LOOKALIKE_DIAGNOSE_RATE_LIMIT": "0",
                "LOOKALIKE_DIAGNOSE_CLIENT_CONCURRENCY": "0",
                "LOOKALIKE_DIAGNOSE_QUEUE_MAX": "0",
                "PYTHONUNBUFFERED": "1",
                **extra,
            }
        )
        return env


class Cluster:
    """A gateway (`lookalike serve`), two diagnose workers (`lookalike worker --concurrency 1`, each with a data dir
    of its own, as if on other hosts) and an ingest worker (`lookalike ingest-worker`)."""

    def __init__(self, stack: Stack, workdir: Path, **env: str) -> None:
        self.stack = stack
        self.workdir = workdir
        self.logdir = workdir / "logs"
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.worker_dirs = {"worker-a": workdir / "host-a", "worker-b": workdir / "host-b"}
        self.extra_env = env
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, Proc] = {}
        self.uploads: dict[bytes, int] = {}  # first 64 bytes of each distinct upload -> times sent
        self._upload_lock = threading.Lock()
        self._db: psycopg.Connection[dict[str, Any]] | None = None
        self._seq = 0
        self.started_at = datetime.now(UTC)

    # ---- life cycle

    def start(self) -> None:
        scratch = self.workdir / "cwd"  # no .env file of the checkout may change the settings
        scratch.mkdir(exist_ok=True)
        for name, data_dir in self.worker_dirs.items():
            data_dir.mkdir(exist_ok=True)
            args = [LOOKALIKE, "worker", "--concurrency", "1", "--hostname", f"{name}@%h"]
            self.procs[name] = spawn(name, args, env=self._env(data_dir), cwd=scratch, logdir=self.logdir)
        self.procs["ingest"] = spawn(
            "ingest",
            [LOOKALIKE, "ingest-worker", "--hostname", "ingest@%h"],
            env=self._env(self.stack.ingest_dir),
            cwd=scratch,
            logdir=self.logdir,
        )
        self.procs["gateway"] = spawn(
            "gateway",
            [LOOKALIKE, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self._env(self.stack.ingest_dir),
            cwd=scratch,
            logdir=self.logdir,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        pending = {"worker-a", "worker-b", "ingest", "gateway"}
        while pending:
            for name in sorted(pending):
                proc = self.procs[name]
                if not proc.running():
                    pytest.fail(f"{name} exited with {proc.popen.returncode} while starting:\n{self.log_tails()}")
                if name == "gateway":
                    with contextlib.suppress(httpx.TransportError):
                        if httpx.get(self.base_url + "/readyz", timeout=5).status_code == 200:
                            pending.discard(name)
                elif " ready." in proc.log.read_text(errors="replace"):
                    pending.discard(name)
            if time.monotonic() > deadline:
                pytest.fail(f"{sorted(pending)} did not come up in {START_TIMEOUT_S:.0f}s:\n{self.log_tails()}")
            time.sleep(0.2)

    def _env(self, data_dir: Path) -> dict[str, str]:
        return self.stack.env(data_dir, **self.extra_env)

    def stop(self) -> None:
        stop_all([self.procs[name] for name in ("gateway", "worker-a", "worker-b", "ingest") if name in self.procs])
        if self._db is not None:
            with contextlib.suppress(Exception):
                self._db.close()

    def log_tails(self, lines: int = 40) -> str:
        return "\n".join(f"----- {p.name} ({p.log})\n{p.tail(lines)}" for p in self.procs.values())

    def check_running(self) -> None:
        for name, proc in self.procs.items():
            assert proc.running(), f"{name} exited with {proc.popen.returncode}:\n{proc.tail()}"

    # ---- workers

    @property
    def diagnose_workers(self) -> list[Proc]:
        return [self.procs["worker-a"], self.procs["worker-b"]]

    def worker_children(self) -> dict[int, str]:
        """pid of each prefork child of the diagnose workers -> which worker it belongs to."""
        return {pid: w.name for w in self.diagnose_workers for pid in w.children()}

    def deliveries(self, job_ids: Iterable[str] | None = None) -> int:
        """Messages the diagnose workers received (for these jobs), from their logs."""
        text = "".join(w.log.read_text(errors="replace") for w in self.diagnose_workers)
        lines = [line for line in text.splitlines() if "Task lookalike.diagnose[" in line and "received" in line]
        if job_ids is None:
            return len(lines)
        wanted = set(job_ids)
        return sum(1 for line in lines if line.split("[", 2)[-1].split("]")[0] in wanted)

    # ---- HTTP

    def client(self, timeout: float = 120.0) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=timeout)

    def token(self) -> str:
        with self._upload_lock:
            self._seq += 1
            return f"{self.stack.token_prefix}-{self._seq:06d}-privacy-probe"

    def note_upload(self, data: bytes) -> None:
        with self._upload_lock:
            self.uploads[data[:64]] = self.uploads.get(data[:64], 0) + 1

    def post_diagnose(
        self, client: httpx.Client, data: bytes, *, group: str | None = None, run_async: bool = False
    ) -> httpx.Response:
        self.note_upload(data)
        mime = "image/png" if data.startswith(PNG_MAGIC) else "image/jpeg"
        return client.post(
            "/diagnose",
            params={"async": "true"} if run_async else None,
            files={"image": ("photo", data, mime)},
            data={"group": group} if group else None,
        )

    def post_photos(self, client: httpx.Client, photos: list[bytes], *, group: str | None = None) -> httpx.Response:
        """Several photos of one person in one request (several `image` parts)."""
        for data in photos:
            self.note_upload(data)
        files = [("image", (f"photo{n}", data, "image/jpeg")) for n, data in enumerate(photos, 1)]
        return client.post("/diagnose", files=files, data={"group": group} if group else None)

    def wait_job_http(self, client: httpx.Client, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            response = client.get(f"/jobs/{job_id}")
            assert response.status_code == 200, response.text
            job: dict[str, Any] = response.json()
            if job["status"] in FINISHED:
                return job
            assert time.monotonic() < deadline, f"job {job_id} still {job['status']} after {timeout:.0f}s"
            time.sleep(0.1)

    # ---- the jobs table

    def db(self) -> psycopg.Connection[dict[str, Any]]:
        if self._db is None or self._db.closed or self._db.broken:
            self._db = psycopg.connect(self.stack.database_url, autocommit=True, row_factory=dict_row)
        return self._db

    def query(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        for attempt in range(2):
            try:
                return self.db().execute(sql, params).fetchall()
            except psycopg.OperationalError:
                self._db = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def job_row(self, job_id: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM jobs WHERE id = %s", (job_id,))
        return rows[0] if rows else None

    def job_rows(self, job_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        rows = self.query("SELECT * FROM jobs WHERE id = ANY(%s)", (list(job_ids),))
        return {r["id"]: r for r in rows}

    def jobs_since(self, since: datetime, kind: str = "diagnose") -> list[dict[str, Any]]:
        return self.query("SELECT * FROM jobs WHERE created_at >= %s AND kind = %s", (since, kind))

    def wait_finished(self, job_ids: Iterable[str], timeout: float = 120.0) -> dict[str, dict[str, Any]]:
        ids = list(job_ids)
        deadline = time.monotonic() + timeout
        while True:
            rows = self.job_rows(ids)
            if len(rows) == len(ids) and all(r["status"] in FINISHED for r in rows.values()):
                return rows
            if time.monotonic() > deadline:
                stuck = {i: rows[i]["status"] if i in rows else "missing" for i in ids}
                stuck = {i: s for i, s in stuck.items() if s not in FINISHED}
                raise AssertionError(f"{len(stuck)} jobs unfinished after {timeout:.0f}s: {stuck}")
            time.sleep(0.1)

    def active_version(self) -> dict[str, Any]:
        [row] = self.query(
            "SELECT v.* FROM index_versions v JOIN groups g ON g.id = v.group_id WHERE v.active AND g.slug = %s",
            (GROUP,),
        )
        return row


def start_cluster(stack: Stack, workdir: Path, **env: str) -> Iterator[Cluster]:
    """Start a cluster, hand it over, and stop every process of it whatever happened."""
    cluster = Cluster(stack, workdir, **env)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


# The embedded mode's answer to (photo bytes, group): ("done", result) or ("failed", error).
Reference = Callable[[bytes, "str | None"], tuple[str, dict[str, Any]]]


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
