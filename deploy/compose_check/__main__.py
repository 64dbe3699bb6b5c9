"""`make compose-check`: build the images from the Dockerfile, start docker-compose.yml under podman, try it through
the gateway, tear it down; then the GPU overlay's config and worker image. Last line: `compose check: N passed, M
failed`; the exit status is non-zero on any failure. See docs/deployment.md."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import secrets
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from . import scenario, standins
from .checklist import Abort, Checklist
from .engine import Engine, ensure_packages
from .gateway import Gateway
from .stack import REPO, Stack

WORKDIR = REPO / "build" / "compose-check"
LOCK = Path("/run/lock/lookalike-compose-check.lock")
BASE_FILES = ["docker-compose.yml"]
GPU_FILES = ["docker-compose.yml", "docker-compose.gpu.yml"]
# What ONNX Runtime wheel an image holds, and the providers that wheel was built with (no GPU is needed to list them).
ORT_PROBE = """import importlib.metadata as md, json, onnxruntime as ort
names = {d.metadata["Name"].lower().replace("_", "-") for d in md.distributions()}
wheels = sorted(names & {"onnxruntime", "onnxruntime-gpu"})
print(json.dumps({"wheels": wheels, "providers": ort.get_available_providers()}))"""


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.compose_check", description=__doc__)
    parser.add_argument("--no-gpu", action="store_true", help="skip the GPU overlay (its worker image is 4 GB)")
    parser.add_argument("--project", default="lookalike-check", help="Compose project name (default %(default)s)")
    args = parser.parse_args()
    checks = Checklist()
    # An Abort was counted where it failed; the checks that needed that one did not run.
    with _one_at_a_time(), contextlib.suppress(Abort):
        run(checks, project=args.project, gpu=not args.no_gpu)
    print(f"took {checks.elapsed() / 60:.1f} min")
    print(checks.summary())
    return 1 if checks.failed or not checks.passed else 0


def run(checks: Checklist, *, project: str, gpu: bool) -> None:
    with checks.check("podman, runc, netavark, debootstrap from Debian", required=True) as notes:
        installed = ensure_packages()
        notes.append(f"installed {' '.join(installed)}" if installed else "already there")
    engine = Engine(WORKDIR)
    with checks.check("stand-in base images from Debian packages", required=True) as notes:
        notes.append(f"podman {engine.version()}, {len(standins.build(engine))} images")
    with engine.api():
        stack = _stack(engine, project, BASE_FILES)
        stack.down()  # what an interrupted run may have left: the check starts from empty volumes
        with checks.check("images built from the Dockerfile (compose build)", required=True):
            stack("build", timeout=3600)
            engine.prune_builds()
        try:
            _exercise(checks, stack)
        finally:
            _tear_down(checks, stack)
        if gpu:
            _gpu_overlay(checks, engine, cpu=stack)


def _stack(engine: Engine, project: str, files: list[str]) -> Stack:
    env = {"LOOKALIKE_ADMIN_TOKEN": secrets.token_hex(16), "LOOKALIKE_PORT": str(_free_port())}
    return Stack(engine, project=project, files=files, env=env, workdir=WORKDIR)


def _exercise(checks: Checklist, stack: Stack) -> None:
    gateway = Gateway(f"http://127.0.0.1:{stack.env['LOOKALIKE_PORT']}", stack.env["LOOKALIKE_ADMIN_TOKEN"])
    try:
        with stack.engine.health_checks(stack.project):
            with checks.check("stack up, every service healthy (compose up --wait)", required=True):
                stack("up", "--detach", "--wait", "--wait-timeout", "900", timeout=1000)
            scenario.ingest(checks, stack, gateway)
            scenario.diagnose(checks, gateway)
            scenario.reindex(checks, gateway)
            scenario.kill_worker_mid_burst(checks, stack, gateway)
            scenario.restart_redis(checks, stack, gateway)
    finally:
        if checks.failed:
            print(stack.logs(), flush=True)
        gateway.close()


def _tear_down(checks: Checklist, stack: Stack) -> None:
    with checks.check("torn down: no container, network or volume of the project left"):
        stack.down()
        label = f"label=com.docker.compose.project={stack.project}"
        for kind, *flags in (("container", "--all"), ("network",), ("volume",)):
            left = stack.engine.podman(kind, "ls", "--quiet", "--filter", label, *flags).stdout.split()
            assert not left, f"{kind}s left: {left}"


def _gpu_overlay(checks: Checklist, engine: Engine, *, cpu: Stack) -> None:
    stack = _stack(engine, f"{cpu.project}-gpu", GPU_FILES)
    with checks.check("GPU overlay: merged config validates"):
        stack("config", "--quiet")
    with checks.check("GPU overlay: worker image builds with onnxruntime-gpu (no GPU here to run it)") as notes:
        stack("build", "worker", timeout=3600)
        engine.prune_builds()
        gpu, base = _onnxruntime(engine, stack.image("worker")), _onnxruntime(engine, cpu.image("worker"))
        assert gpu["wheels"] == ["onnxruntime-gpu"], gpu
        assert "CUDAExecutionProvider" in gpu["providers"], gpu
        assert base["wheels"] == ["onnxruntime"] and "CUDAExecutionProvider" not in base["providers"], base
        notes.append(f"GPU worker: {', '.join(gpu['providers'])}; CPU images keep onnxruntime")


def _onnxruntime(engine: Engine, image: str) -> dict[str, list[str]]:
    out = engine.podman("run", "--rm", "--network", "none", image, "python", "-c", ORT_PROBE, timeout=300).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


@contextlib.contextmanager
def _one_at_a_time() -> Iterator[None]:
    """Two checks on one machine (two clones, two CI runs) would share the project's containers and image names:
    the second waits for the first."""
    with LOCK.open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for the compose check that holds {LOCK}", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
