"""The README's commands run as written, and every link in README.md and docs/ leads somewhere.

Each line of the README's `sh` blocks runs in the checkout with bash, as a newcomer would type it, except that the
environment points the service at a scratch data dir and a free port (the URL's port is rewritten to match):
- `make run` is started in the background and stopped at the end; the commands after it talk to it;
- `make test` runs with PYTEST_ADDOPTS naming one quick test file: the target, the venv and pytest's set-up are
  exercised, without the suite running itself again from inside itself (the suite is what runs this test);
- `make up` and `make up-gpu` (Docker Compose, which this machine may lack) run as `make -n`: the target must
  exist and start compose; tests/test_compose.py checks the compose files themselves;
- anything else (curl) runs to completion and must exit 0.
A command this test does not know is a failure: a new README command needs a rule here first.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.distributed.dist_harness import free_port

README = REPO / "README.md"
DOCS = sorted([README, *(REPO / "docs").glob("*.md")])
README_URL = "http://127.0.0.1:8000"
START_TIMEOUT_S = 180.0
QUICK_TESTS = "tests/test_imports.py"

FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def fenced(text: str, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(text) if lang == language]


def commands(block: str) -> list[str]:
    """The block's command lines: comments dropped, backslash continuations joined."""
    joined = block.replace("\\\n", " ")
    return [line.split(" #")[0].strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_links_resolve(doc: Path) -> None:
    broken = []
    for target in LINK.findall(FENCE.sub("", doc.read_text())):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file_part, _, anchor = target.partition("#")
        path = (doc.parent / file_part).resolve() if file_part else doc
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading #{anchor}")
    assert not broken, f"{doc.name}: {broken}"


def test_readme_is_short() -> None:
    """The page a newcomer reads first; reference material lives in docs/."""
    assert len(README.read_text()) < 10_000


@contextmanager
def background(command: str, *, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", "-c", command],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # make and the server it starts form one group, stopped together
        )
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def wait_ready(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"`make run` exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(base_url + "/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"`make run` was not ready in {START_TIMEOUT_S:.0f}s:\n{log.read_text()[-4000:]}")


def shown_answer(text: str) -> dict[str, str]:
    """The verdict and first member of the answer the README prints after its curl."""
    [answer] = [b for b in fenced(text, "jsonc") if '"faces"' in b]
    verdict = re.search(r'"verdict": "(\w+)"', answer)
    first = re.search(r'"slug": "(\w+)"', answer)
    assert verdict and first
    return {"verdict": verdict.group(1), "slug": first.group(1)}


def test_readme_commands_run_as_written(tmp_path: Path) -> None:
    text = README.read_text()
    lines = [line for block in fenced(text, "sh") for line in commands(block)]
    assert "make run" in lines and "make test" in lines
    port = free_port()
    env = {
        **os.environ,
        "LOOKALIKE_DATA_DIR": str(tmp_path / "data"),
        "LOOKALIKE_PORT": str(port),
        "LOOKALIKE_DATABASE_URL": "",
        "LOOKALIKE_BROKER_URL": "",
    }
    env.pop("PYTEST_ADDOPTS", None)
    base_url = f"http://127.0.0.1:{port}"
    answers: list[dict[str, object]] = []
    with ExitStack() as stack:
        for line in lines:
            if line == "make run":
                log = tmp_path / "make-run.log"
                server = stack.enter_context(background(line, env=env, log=log))
                wait_ready(base_url, server, log)
            elif line == "make test":
                done = subprocess.run(
                    ["bash", "-c", line],
                    cwd=REPO,
                    env={**env, "PYTEST_ADDOPTS": f"-q {QUICK_TESTS}"},
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
                assert re.search(r"^\d+ passed", done.stdout, re.MULTILINE), done.stdout[-2000:]
            elif line in ("make up", "make up-gpu"):
                done = subprocess.run(["make", "-n", line.split()[1]], cwd=REPO, capture_output=True, text=True)
                assert done.returncode == 0 and "docker compose" in done.stdout, done.stdout + done.stderr
            elif line.startswith("curl "):
                done = subprocess.run(
                    ["bash", "-c", line.replace(README_URL, base_url)],
                    cwd=REPO,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert done.returncode == 0, done.stderr
                answers.append(json.loads(done.stdout))
            else:
                pytest.fail(f"the README shows `{line}`, which this test does not know how to run")
    # The answer the README prints is the one its curl gets.
    [answer] = answers
    face = answer["faces"][0]  # type: ignore[index]
    assert {"verdict": face["verdict"], "slug": face["matches"][0]["slug"]} == shown_answer(text)
