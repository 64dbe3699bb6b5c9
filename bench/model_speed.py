"""Issue 17: the models alone, one ONNX Runtime thread: the detector at the input sizes the pipeline uses and the
embedder on one face, as shipped (the ONNX file as it is), as loaded here (models/sessions.py: create_session, the
embedder's PRelus rewritten) and quantized to INT8 (models/quantize.py: buffalo_s-int8's detector, and the embedder
quantize_embedder makes, which no pack uses). Median CPU time of one run, the variants interleaved round by round;
ratios to the shipped model.

    .venv/bin/python bench/model_speed.py [--rounds 5] [--runs 20] [--model-root DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table, write_json

from lookalike.config import Settings
from lookalike.models import quantize
from lookalike.models.packs import resolve_pack
from lookalike.models.sessions import create_session, session_options

INPUTS = {
    "detector 640x480": ("detector", (1, 3, 480, 640)),
    "detector 640x640": ("detector", (1, 3, 640, 640)),
    "detector 320x256": ("detector", (1, 3, 256, 320)),
    "detector 160x160 (crop check)": ("detector", (1, 3, 160, 160)),
    "embedder, 1 face": ("embedder", (1, 3, 112, 112)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20, help="timed runs per input per round")
    parser.add_argument("--model-root", type=Path, default=Settings().model_root)
    args = parser.parse_args()
    fp32 = resolve_pack("buffalo_s", model_root=args.model_root)
    int8 = resolve_pack("buffalo_s-int8", model_root=args.model_root)
    cpu = ["CPUExecutionProvider"]
    plain = session_options(threads=1, on_cpu=True)
    models = ("detector", "embedder")
    with tempfile.TemporaryDirectory() as scratch:
        int8_embedder = Path(scratch) / "embedder.int8.onnx"
        quantize.quantize_embedder(fp32, int8_embedder, quantize.calibration_photos())
        sessions = {
            "shipped": {m: ort.InferenceSession(str(getattr(fp32, m)), plain, providers=cpu) for m in models},
            "loaded": {m: create_session(getattr(fp32, m), providers=cpu, threads=1) for m in models},
            "int8": {
                "detector": create_session(int8.detector, providers=cpu, threads=1),
                "embedder": create_session(int8_embedder, providers=cpu, threads=1),
            },
        }
    rng = np.random.default_rng(0)
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for label, (model, shape) in INPUTS.items():
            x = rng.uniform(-1, 1, shape).astype(np.float32)
            for variant, by_model in sessions.items():
                session = by_model[model]
                feed = {session.get_inputs()[0].name: x}
                session.run(None, feed)
                runs = []
                for _ in range(args.runs):
                    t = time.thread_time()
                    session.run(None, feed)
                    runs.append(time.thread_time() - t)
                times.setdefault((label, variant), []).append(statistics.median(runs))
    rows = []
    for label in INPUTS:
        row: dict[str, object] = {"input": label}
        ms = {v: 1000 * statistics.median(times[(label, v)]) for v in sessions}
        for variant, value in ms.items():
            row[f"{variant}_ms"] = round(value, 2)
        row["loaded_speedup"] = round(ms["shipped"] / ms["loaded"], 2)
        row["int8_speedup"] = round(ms["shipped"] / ms["int8"], 2)
        row["int8_vs_loaded"] = round(ms["loaded"] / ms["int8"], 2)
        rows.append(row)
    print(table(rows, list(rows[0])))
    print("wrote", write_json("model_speed", {"rounds": args.rounds, "runs": args.runs, "rows": rows}))


if __name__ == "__main__":
    main()
