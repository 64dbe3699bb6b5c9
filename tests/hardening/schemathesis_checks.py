"""A check of our own for the schemathesis CLI (SCHEMATHESIS_HOOKS=this file), and a tally of its answers.

No /admin request without the admin token may get a 2xx. The answers are counted by status class (and /admin ones
with or without the token), and written as JSON to $LOOKALIKE_TEST_SCHEMATHESIS_COUNTS when the run ends.
"""

from __future__ import annotations

import atexit
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import schemathesis

TOKEN = os.environ["LOOKALIKE_TEST_ADMIN_TOKEN"]
ANSWERS: Counter[str] = Counter()


@atexit.register
def _write_counts() -> None:
    Path(os.environ["LOOKALIKE_TEST_SCHEMATHESIS_COUNTS"]).write_text(json.dumps(ANSWERS))


@schemathesis.check
def admin_needs_the_token(ctx: Any, response: Any, case: Any) -> bool | None:
    status = response.status_code
    ANSWERS[f"{status // 100}xx"] += 1
    if case.path == "/readyz" and status == 503:
        ANSWERS["readyz 503"] += 1  # not ready: no gallery indexed once the admin run has deleted it
    if case.path.startswith("/admin"):
        with_token = response.request.headers.get("Authorization") == f"Bearer {TOKEN}"
        ANSWERS[f"admin {status // 100}xx {'with' if with_token else 'without'} the token"] += 1
        if 200 <= status < 300 and not with_token:
            raise AssertionError(f"{case.method} {case.formatted_path} answered {status} without the admin token")
    return None
