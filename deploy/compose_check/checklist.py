"""Named checks, each passed or failed with its time, and the closing line `compose check: N passed, M failed`."""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager


class Abort(Exception):
    """A check failed that the later ones need: they are not run."""


class Checklist:
    def __init__(self) -> None:
        self.passed: list[str] = []
        self.failed: list[str] = []
        self.started = time.monotonic()

    @contextmanager
    def check(self, name: str, *, required: bool = False) -> Iterator[list[str]]:
        """Run the block as one check; it may append details to the list it gets. A failure of a required check
        raises Abort after it is counted."""
        details: list[str] = []
        start = time.monotonic()
        print(f"...  {name}", flush=True)
        try:
            yield details
        except Exception as exc:
            self.failed.append(name)
            print(f"FAIL {name} ({time.monotonic() - start:.0f} s): {type(exc).__name__}: {exc}", flush=True)
            if not isinstance(exc, AssertionError | TimeoutError):
                traceback.print_exc()
            if required:
                raise Abort(name) from exc
        else:
            self.passed.append(name)
            note = f": {'; '.join(details)}" if details else ""
            print(f"ok   {name} ({time.monotonic() - start:.0f} s){note}", flush=True)

    def summary(self) -> str:
        return f"compose check: {len(self.passed)} passed, {len(self.failed)} failed"

    def elapsed(self) -> float:
        return time.monotonic() - self.started
