"""schemathesis against /openapi.json of a real `lookalike serve`, once without and once with the admin token.

The schemathesis CLI itself (its examples, coverage and fuzzing phases), with every check it has but one:
positive_data_acceptance expects every request the schema allows to be accepted, and a schema cannot say "the
bytes of a photo" (random bytes are rightly a 415) or "exactly one of member_id, group and all". So: no 5xx, every
status documented, every body valid against its documented schema, the documented content types and headers,
invalid input refused, a 405 with its Allow header, auth enforced, and our own check (schemathesis_checks.py): no
/admin request without the token gets a 2xx. MAX_EXAMPLES bounds each run to about a minute on 2 cores.

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
from pathlib import Path

import pytest
from test_api import Gateway, run_gateway

TOKEN = "schemathesis-admin-token-" + "0123456789abcdef" * 2
MAX_EXAMPLES = 50
MAX_EXAMPLES_WITHOUT_TOKEN = 10
CHECKS = Path(__file__).with_name("schemathesis_checks.py")
CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))


@pytest.fixture(scope="module")
def api(demo_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    work = tmp_path_factory.mktemp("schemathesis")
    shutil.copytree(demo_data_dir, work / "data")
    # Scrapes it queues find no network anyway; a short deadline keeps the ingestion worker free.
    env = {"LOOKALIKE_ADMIN_TOKEN": TOKEN, "LOOKALIKE_FETCH_DEADLINE_S": "2"}
    with run_gateway(work / "data", work, cli=True, **env) as running:
        yield running


@pytest.mark.parametrize("with_token", [False, True], ids=["without-token", "with-token"])
def test_openapi_schema_holds(
    api: Gateway, tmp_path: Path, with_token: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    counts = tmp_path / "counts.json"
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
        "LOOKALIKE_TEST_SCHEMATHESIS_COUNTS": str(counts),
    }
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    summary = run.stdout[run.stdout.rfind("SUMMARY") :]
    answers = json.loads(counts.read_text())
    with capsys.disabled():
        print(f"\nschemathesis {'with' if with_token else 'without'} the token: {answers}")
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-3000:]
    assert answers.get("5xx", 0) == answers.get("readyz 503", 0), answers
    assert answers["2xx"] > 0 and answers["4xx"] > 0, summary
    assert (f"admin 2xx {'with' if with_token else 'without'} the token" in answers) == with_token, answers
