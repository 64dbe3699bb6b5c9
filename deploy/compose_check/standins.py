"""Local stand-ins for the public base images the project names (python:3.11-slim-bookworm, postgres:16, redis:7),
built from Debian's packages where no registry of images is reachable, under the same names, so that the
Dockerfile and the compose files build and run unchanged.

The base is a debootstrap of Debian bookworm from this machine's own apt mirror, carrying this machine's apt
sources, its `Acquire::` settings, its CA certificates and its pip configuration: what the builds inside need to
reach Debian and PyPI the way this machine does. No host is named here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .engine import Engine

SUITE = "bookworm"
BASE = f"localhost/lookalike-standin/debian:{SUITE}"
HERE = Path(__file__).resolve().parents[1] / "standins"
# image name (as the Dockerfile and docker-compose.yml say it) -> its Containerfile in deploy/standins/
STANDINS = {
    "docker.io/library/python:3.11-slim-bookworm": "python.Containerfile",
    "docker.io/library/postgres:16": "postgres.Containerfile",
    "docker.io/library/redis:7": "redis.Containerfile",
}
APT = Path("/etc/apt")
PIP_CONFIG = [Path("/etc/pip.conf"), Path("/etc/xdg/pip"), Path.home() / ".config/pip", Path.home() / ".pip"]
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
LOCAL_CAS = Path("/usr/local/share/ca-certificates")


def build(engine: Engine) -> list[str]:
    """Build what is missing or out of date; returns the images built (podman's layer cache makes the rest quick)."""
    built = []
    if engine.podman("image", "exists", BASE, check=False).returncode != 0:
        _build_base(engine)
        built.append(BASE)
    for image, containerfile in STANDINS.items():
        engine.podman("build", "-f", str(HERE / containerfile), "-t", image, str(HERE), timeout=1800)
        built.append(image)
    return built


def apt_mirror(apt: Path = APT) -> str:
    """The first Debian mirror of the machine's apt sources that serves the suite (deb822 or one-line style)."""
    for path in sorted((apt / "sources.list.d").glob("*.sources")):
        for stanza in path.read_text().split("\n\n"):
            fields = dict(_deb822_fields(stanza))
            if "deb" in fields.get("types", "").split() and SUITE in fields.get("suites", "").split():
                return fields["uris"].split()[0]
    for path in [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]:
        for line in path.read_text().splitlines() if path.is_file() else []:
            words = re.sub(r"\[[^]]*\]", "", line.partition("#")[0]).split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                return words[1]
    raise RuntimeError(f"no apt source for Debian {SUITE} in {apt}")


def _deb822_fields(stanza: str) -> list[tuple[str, str]]:
    lines = [line for line in stanza.splitlines() if line and not line.startswith("#")]
    return [(key.strip().lower(), value.strip()) for key, _, value in (line.partition(":") for line in lines)]


def _build_base(engine: Engine) -> None:
    with tempfile.TemporaryDirectory(prefix="lookalike-standin-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        debootstrap = ["debootstrap", "--variant=minbase", SUITE, str(rootfs), apt_mirror()]
        subprocess.run(debootstrap, capture_output=True, check=True, timeout=1800)
        _carry_machine_settings(rootfs)
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (rootfs / cache).glob("*"):
                if item.is_file():
                    item.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        imported = subprocess.run(
            ["podman", "import", "--change", f"ENV {path}", "--change", 'CMD ["bash"]', "-", BASE],
            stdin=tar.stdout,
            env=engine.env,
            capture_output=True,
            timeout=600,
        )
        tar.wait(timeout=600)
        if imported.returncode != 0 or tar.returncode != 0:
            raise RuntimeError(f"podman import failed: {imported.stderr.decode(errors='replace')[-500:]}")


def _carry_machine_settings(rootfs: Path) -> None:
    def copy(source: Path, target: Path | None = None) -> None:
        dest = rootfs / (target or source).relative_to("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, dest, dirs_exist_ok=True)
        elif source.is_file():
            shutil.copy2(source, dest)

    # apt: the machine's sources (mirror, security, updates) and its Acquire:: settings (proxy, validity), nothing
    # else of its apt.conf.d (hooks there call programs the image does not have).
    (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
    for pattern in ("sources.list", "sources.list.d/*.sources", "sources.list.d/*.list"):
        for source in APT.glob(pattern):
            copy(source)
    for conf in (APT / "apt.conf.d").glob("*"):
        lines = [line.strip() for line in conf.read_text().splitlines()]
        settings = [line for line in lines if line and not line.startswith(("//", "#"))]
        if settings and all(line.startswith("Acquire::") for line in settings):
            copy(conf)
    # TLS: the machine's own CAs (update-ca-certificates in the image keeps them) and its bundle until then.
    copy(LOCAL_CAS)
    copy(CA_BUNDLE)
    for path in PIP_CONFIG:
        copy(path, Path("/root") / path.relative_to(Path.home()) if path.is_relative_to(Path.home()) else None)
    # As in Docker's Debian images: packages do not start their services while an image is built.
    policy = rootfs / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
