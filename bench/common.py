"""What every benchmark shares: the benchmark photos, timing statistics, the machine's description, tables, JSON.

Benchmarks report ratios measured in one run (service / raw ceiling), never absolute targets alone: the machines
are shared and noisy, and a ratio survives that where a number of milliseconds does not.
"""

from __future__ import annotations

import io
import json
import os
import platform
import statistics
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
FACES = REPO / "tests" / "data" / "faces"


def one_face_photos() -> list[Path]:
    """The benchmark photos: every one-face photo in the repository (probes of the demo members and strangers),
    so that a fresh clone reproduces the figures."""
    photos = sorted((FACES / "probes").glob("*/*.jpg")) + sorted((FACES / "strangers").glob("*/*.jpg"))
    if not photos:
        raise SystemExit(f"no benchmark photos under {FACES}")
    return photos


def phone_jpeg(path: Path, size: tuple[int, int]) -> bytes:
    """The photo centred on a canvas of `size`, enlarged to fill its height, as a phone's JPEG (quality 92)."""
    from PIL import Image

    img = Image.open(path).convert("RGB")
    w, h = size
    img = img.resize((max(1, round(img.width * h / img.height)), h), Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", size, (200, 200, 200))
    canvas.paste(img, ((w - img.width) // 2, 0))
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=92)
    return out.getvalue()


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def latency_stats(seconds: Sequence[float]) -> dict[str, float]:
    """p50, p95 and mean in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "mean_ms": round(statistics.fmean(ms), 2) if ms else float("nan"),
        "n": len(ms),
    }


def machine() -> dict[str, Any]:
    import onnxruntime as ort

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "providers": ort.get_available_providers(),
    }


def scratch_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"lookalike-bench-{prefix}-"))


def table(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> str:
    """A Markdown table (it prints readably and pastes into docs/benchmarks.md as is)."""
    rows = list(rows)

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_json(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2, default=str))
    return path
