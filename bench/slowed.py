"""Run a command as on a machine N times slower: the suite's time on the slow VM class, measured here.

The brief's slowest VM (a 2-core AMD EPYC without AVX-512) is not lent on demand. This runs a command, and every
process it starts, in a cgroup that the freezer stops for (1 - 1/N) of each short period, so all of its CPU work,
ONNX Runtime's and Python's alike, takes N times the wall time, single-threaded or not, while sleeps, timeouts and
PostgreSQL/Redis (outside the cgroup) keep their real speed. It is an emulation, not that VM; docs/development.md
says how N was chosen.

    sudo .venv/bin/python bench/slowed.py --factor 2.1 -- make test

Needs root and the cgroup freezer (v1 `freezer` hierarchy or v2 `cgroup.freeze`). Prints the command's wall time
and the duty cycle achieved; the command's exit status is this script's.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

V1_ROOT = Path("/sys/fs/cgroup/freezer")
V2_ROOTS = (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))


class Freezer:
    """One new cgroup whose processes can all be stopped and resumed at once."""

    def __init__(self, name: str) -> None:
        if (V1_ROOT / "cgroup.procs").exists():
            self.path, self.v2 = V1_ROOT / name, False
        else:  # cgroup v2: the unified hierarchy, mounted beside v1 (hybrid) or at the top
            root = next((r for r in V2_ROOTS if (r / "cgroup.controllers").exists()), None)
            if root is None:
                raise SystemExit("slowed: no cgroup freezer here (needs /sys/fs/cgroup/freezer or cgroup v2)")
            self.path, self.v2 = root / name, True
        self.path.mkdir()

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def freeze(self, on: bool) -> None:
        if self.v2:
            (self.path / "cgroup.freeze").write_text("1" if on else "0")
        else:
            (self.path / "freezer.state").write_text("FROZEN" if on else "THAWED")

    def remove(self) -> None:
        self.freeze(False)
        # Leftover processes (a daemon the command started and left) move back to the root before rmdir.
        for pid in (self.path / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):  # it exited meanwhile
                (self.path.parent / "cgroup.procs").write_text(pid)
        self.path.rmdir()


def run(command: list[str], factor: float, period_s: float) -> int:
    freezer = Freezer(f"lookalike-slowed-{os.getpid()}")
    child = os.fork()
    if child == 0:
        freezer.add(os.getpid())  # before exec, so every descendant is born inside
        os.execvp(command[0], command)
    running_s = period_s / factor
    started = time.monotonic()
    thawed_total = 0.0
    status = 0
    try:
        while True:
            pid, status = os.waitpid(child, os.WNOHANG)
            if pid:
                break
            thawed = time.monotonic()
            time.sleep(running_s)
            freezer.freeze(True)
            thawed_total += time.monotonic() - thawed
            # Stay frozen until the thawed share is back to 1/factor: sleeps overshoot, and this corrects for it.
            time.sleep(max(0.0, started + thawed_total * factor - time.monotonic()))
            freezer.freeze(False)
    except KeyboardInterrupt:
        freezer.freeze(False)
        os.kill(child, signal.SIGINT)
        _, status = os.waitpid(child, 0)
    finally:
        freezer.remove()
    wall = time.monotonic() - started
    print(
        f"slowed: {' '.join(command)}: {wall:.0f} s wall ({wall / 60:.1f} min) at factor {factor}, "
        f"thawed {thawed_total / wall:.3f} of the time (target {1 / factor:.3f})",
        file=sys.stderr,
    )
    return os.waitstatus_to_exitcode(status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--factor", type=float, required=True, help="how many times slower (> 1)")
    parser.add_argument("--period-ms", type=float, default=20.0, help="one freeze/thaw cycle (default 20 ms)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command or args.factor <= 1:
        parser.error("give --factor > 1 and a command after --")
    sys.exit(run(command, args.factor, args.period_ms / 1000))


if __name__ == "__main__":
    main()
