"""The package's layers point down only: no import cycle inside `lookalike`.

Every import statement counts, wherever it stands: at module level, under `if TYPE_CHECKING`, or inside a function.
A function-local import only delays a circle until the call (that is how jobs.functions and ingest.scrape imported
each other); the two modules still depend on each other, so one could not be changed or tested without the other.
Local imports stay welcome for what they are for: loading a heavy dependency only when it is used.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

SOURCE = REPO / "shared"


def modules(source: Path = SOURCE, package: str = "lookalike") -> dict[str, Path]:
    found = {}
    for path in (source / package).rglob("*.py"):
        parts = path.relative_to(source).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The `lookalike` modules that `name` imports anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            # `from lookalike.db import repository` imports the module lookalike.db.repository
            targets.update(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names)
    return {t for t in targets if t in known and t != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each a set of modules in a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while (top := stack.pop()) != node:
                component.append(top)
            component.append(node)
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_in_lookalike() -> None:
    known = modules()
    graph = {name: imported(name, path, known) for name, path in known.items()}
    assert "lookalike.ingest.scrape" in graph["lookalike.jobs.functions"]  # the graph sees what it should
    assert cycles(graph) == []


def test_a_circle_through_a_local_import_is_found(tmp_path: Path) -> None:
    """The detector itself, on the circle this test was written for as it stood: scrape imported JobContext from
    jobs.functions at module level, and functions imported scrape inside a function."""
    (tmp_path / "pkg" / "jobs").mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "jobs" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "jobs" / "functions.py").write_text("def work():\n    from pkg import scrape\n")
    (tmp_path / "pkg" / "scrape.py").write_text("from .jobs.functions import work\nimport pkg.fetcher\n")
    (tmp_path / "pkg" / "fetcher.py").write_text("import os\n")
    known = modules(tmp_path, "pkg")
    graph = {name: imported(name, path, known) for name, path in known.items()}
    assert graph["pkg.scrape"] == {"pkg.jobs.functions", "pkg.fetcher"}
    assert cycles(graph) == [["pkg.jobs.functions", "pkg.scrape"]]


def test_serving_processes_start_without_insightfaces_package() -> None:
    """Every gateway, worker and CLI command pays its imports at start. insightface's package pulls in SciPy,
    scikit-image and requests (about 0.4 s of a 1.2 s gateway start); the pipeline decodes SCRFD itself and imports
    insightface only to download a pack (models/packs.py)."""
    entry_points = ["services.gateway.app", "services.worker.tasks", "services.ingest.tasks", "lookalike.evaluation"]
    heavy = ["insightface", "scipy", "skimage", "requests"]
    probe = f"import sys\nfor m in {entry_points!r}: __import__(m)\nprint([m for m in {heavy!r} if m in sys.modules])"
    run = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
