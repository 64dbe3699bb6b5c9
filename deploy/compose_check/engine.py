"""Podman as this machine needs it: the Debian packages, the engine settings that work here, the Docker-compatible
API that Docker Compose talks to, and the health checks podman would otherwise leave to systemd timers.

None of this is in the Dockerfile or the compose files: a user with Docker needs none of it.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

# Debian's podman with Debian's runc (its first choice, crun, rejects this machine's hybrid cgroups), netavark and
# aardvark-dns for bridge networks where services find each other by name, and debootstrap for the stand-in images.
PACKAGES = ("podman", "runc", "netavark", "aardvark-dns", "iptables", "debootstrap")

CONTAINERS_CONF = """\
[containers]
# these machines refuse podman's default rlimits
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"

[network]
# bridge networks with DNS (aardvark-dns): compose services reach each other by name, and no container binds the
# host's own PostgreSQL or Redis ports
network_backend = "netavark"
"""

# Until a container is healthy its check runs this often (Docker waits a whole interval before the first one, which
# would only make the check slower); once healthy, at the image's own interval.
STARTING_EVERY_S = 3.0
HEALTHY_EVERY_S = 30.0


def ensure_packages(packages: Sequence[str] = PACKAGES) -> list[str]:
    """Install the missing ones from Debian (a fresh machine has none of them); returns what was installed."""
    missing = [p for p in packages if not _installed(p)]
    if missing:
        install = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
        env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(install, env=env, capture_output=True, timeout=900).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=True, timeout=900)
            subprocess.run(install, env=env, capture_output=True, check=True, timeout=900)
    return missing


def _installed(package: str) -> bool:
    query = ["dpkg-query", "-W", "-f", "${Status}", package]
    status = subprocess.run(query, capture_output=True, text=True, timeout=60)
    return status.returncode == 0 and status.stdout.endswith(" installed")


class Engine:
    """Podman with this check's settings (through the environment: nothing on the machine is reconfigured)."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "containers.conf"
        conf.write_text(CONTAINERS_CONF)
        self.socket = workdir / "podman.sock"
        self.env = os.environ | {
            "CONTAINERS_CONF": str(conf),
            # the OCI isolation of RUN steps fails here; chroot works
            "BUILDAH_ISOLATION": "chroot",
            # the OCI image format has no HEALTHCHECK
            "BUILDAH_FORMAT": "docker",
            "DOCKER_HOST": f"unix://{self.socket}",
        }

    def podman(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=check
        )

    def version(self) -> str:
        return self.podman("version", "--format", "{{.Client.Version}}").stdout.strip()

    def prune_builds(self) -> None:
        """Drop the images a rebuild left without a name (Compose's builds only): each holds gigabytes of layers."""
        self.podman("image", "prune", "--force", "--filter", "label=com.docker.compose.image.builder=classic")

    @contextmanager
    def api(self) -> Iterator[None]:
        """`podman system service`: the Docker API on a socket of this check's own, for as long as the block runs."""
        self.socket.unlink(missing_ok=True)
        service = subprocess.Popen(
            ["podman", "system", "service", "--time", "0", f"unix://{self.socket}"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            self._wait_for_api(service)
            yield
        finally:
            service.terminate()
            try:
                service.wait(timeout=30)
            except subprocess.TimeoutExpired:
                service.kill()
                service.wait()

    def _wait_for_api(self, service: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        transport = httpx.HTTPTransport(uds=str(self.socket))
        with httpx.Client(transport=transport, base_url="http://podman", timeout=5) as client:
            while time.monotonic() < deadline:
                if service.poll() is not None:
                    raise RuntimeError(f"podman system service exited with {service.returncode}")
                try:
                    if client.get("/_ping").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
        raise TimeoutError(f"podman system service did not answer on {self.socket} in {timeout_s:.0f} s")

    @contextmanager
    def health_checks(self, project: str) -> Iterator[None]:
        """Run the health checks of a compose project's containers, as podman does from systemd timers (there is no
        systemd here, so without this every container with a health check would stay `starting` for ever)."""
        stop = threading.Event()
        thread = threading.Thread(target=self._tick, args=(project, stop), name="health-checks", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=60)

    def _tick(self, project: str, stop: threading.Event) -> None:
        due: dict[str, float] = {}
        while not stop.wait(1.0):
            label = f"label=com.docker.compose.project={project}"
            listing = self.podman("ps", "--filter", label, "--format", "{{.ID}} {{.Status}}", timeout=60, check=False)
            now = time.monotonic()
            for line in listing.stdout.splitlines():
                container, _, status = line.partition(" ")
                if not status.endswith(("(starting)", "(healthy)", "(unhealthy)")) or due.get(container, 0) > now:
                    continue
                self.podman("healthcheck", "run", container, timeout=60, check=False)
                every = HEALTHY_EVERY_S if status.endswith("(healthy)") else STARTING_EVERY_S
                due[container] = time.monotonic() + every
