"""schemathesis against /openapi.json of a real `lookalike serve`, once without and once with the admin token.

The schemathesis CLI itself (its examples, coverage and fuzzing phases), with every check it has but one:
positive_data_acceptance expects every request the schema allows to be accepted, and a schema cannot say "the
bytes of a photo" (random bytes are rightly a 415) or "exactly one of member_id, group and all". So: no 5xx, every
status documented, every body valid against its documented schema, the documented content types and headers,
invalid input refused, a 405 with its Allow header, auth enforced, and our own check (schemathesis_checks.py): no
/admin request without the token gets a 2xx. MAX_EXAMPLES bounds each run to about a minute on 2 cores; the two
runs go at once.

The run without the token fuzzes with fewer examples: its public operations are the same in the run with the token
(a token changes nothing there), and its /admin ones all answer 401, whatever they are sent; there, more examples
only repeated the refusal (1,670 of its 1,914 4xx).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_api import Gateway, run_gateway

TOKEN = "schemathesis-admin-token-" + "0123456789abcdef" * 2
MAX_EXAMPLES = 50
MAX_EXAMPLES_WITHOUT_TOKEN = 10
CHECKS = Path(__file__).with_name("schemathesis_checks.py")
CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))


@dataclass
class Run:
    """One schemathesis run in the background, against a gateway of its own."""

    process: subprocess.Popen[bytes]
    work: Path

    def output(self) -> tuple[str, str]:
        self.process.wait(timeout=300)
        return (self.work / "stdout.txt").read_text(), (self.work / "stderr.txt").read_text()


@pytest.fixture(scope="module")
def runs(demo_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[bool, Run]]:
    """Both runs at once, each against its own copy of the demo gallery: the run with the token deletes it (an admin
    may), which the run without must not see. Each run alone kept about one core busy (schemathesis and the server
    take turns); together they use both."""
    with ExitStack() as stack:
        started: dict[bool, Run] = {}
        for with_token in (False, True):
            work = tmp_path_factory.mktemp("schemathesis-with-token" if with_token else "schemathesis")
            shutil.copytree(demo_data_dir, work / "data")
            # Scrapes it queues find no network anyway; a short deadline keeps the ingestion worker free.
            env = {"LOOKALIKE_ADMIN_TOKEN": TOKEN, "LOOKALIKE_FETCH_DEADLINE_S": "2"}
            api = stack.enter_context(run_gateway(work / "data", work, cli=True, **env))
            started[with_token] = start(api, work, with_token)
            stack.callback(started[with_token].process.kill)
        yield started


def start(api: Gateway, work: Path, with_token: bool) -> Run:
    command = [SCHEMATHESIS, "--config-file", str(CONFIG), "run", f"{api.base_url}/openapi.json", "--checks", "all"]
    command += ["--exclude-checks", "positive_data_acceptance", "--max-examples"]
    command += [str(MAX_EXAMPLES if with_token else MAX_EXAMPLES_WITHOUT_TOKEN)]
    command += ["--phases", "examples,coverage,fuzzing", "--no-color", "--workers", "1"]
    if with_token:
        command += ["--header", f"Authorization: Bearer {TOKEN}"]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": str(CHECKS),
        "LOOKALIKE_TEST_ADMIN_TOKEN": TOKEN,
        "LOOKALIKE_TEST_SCHEMATHESIS_COUNTS": str(work / "counts.json"),
    }
    # To files, not pipes: a pipe nobody reads until the test's turn would fill and stall the run.
    with (work / "stdout.txt").open("wb") as stdout, (work / "stderr.txt").open("wb") as stderr:
        return Run(subprocess.Popen(command, cwd=work, env=env, stdout=stdout, stderr=stderr), work)


@pytest.mark.parametrize("with_token", [False, True], ids=["without-token", "with-token"])
def test_openapi_schema_holds(runs: dict[bool, Run], with_token: bool, capsys: pytest.CaptureFixture[str]) -> None:
    run = runs[with_token]
    stdout, stderr = run.output()
    summary = stdout[stdout.rfind("SUMMARY") :]
    answers = json.loads((run.work / "counts.json").read_text())
    with capsys.disabled():
        print(f"\nschemathesis {'with' if with_token else 'without'} the token: {answers}")
    assert run.process.returncode == 0, stdout[-20000:] + stderr[-3000:]
    assert answers.get("5xx", 0) == answers.get("readyz 503", 0), answers
    assert answers["2xx"] > 0 and answers["4xx"] > 0, summary
    assert (f"admin 2xx {'with' if with_token else 'without'} the token" in answers) == with_token, answers
