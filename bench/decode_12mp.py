"""Figure 6: 12-megapixel phone JPEGs. Full decode vs libjpeg's reduced-size (DCT-scaled) decode, and what the
reduced decode does to detection and to the answer.

Each benchmark photo is enlarged to 4000x3000 (12 MP, quality 92, like a phone's) and shrunk to 1155x866 (1 MP).
Per photo: decode time at full size and at the service's reduced size; the whole diagnosis of the 12 MP and
of the 1 MP photo (same answer? ratio of times). Target (issue 6): 12 MP diagnosed in <= 1.5x the time of 1 MP.

    .venv/bin/python bench/decode_12mp.py [--photos 8] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import one_face_photos, percentile, phone_jpeg, scratch_dir, table, write_json

from lookalike.config import Settings
from lookalike.db.migrate import upgrade
from lookalike.imaging import decode_image
from lookalike.index.builder import reindex_group
from lookalike.index.registry import IndexRegistry
from lookalike.ingest.local import ingest_folder
from lookalike.pipeline.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[1]


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    """Median seconds of `repeat` calls."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return percentile(times, 50)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    settings = Settings(data_dir=scratch_dir("decode"))
    upgrade(settings.sqlalchemy_url)
    pipe = Pipeline(settings)
    ingest_folder(settings, pipe, REPO / "demo" / "gallery", group_slug="sakamichi")
    reindex_group(settings, "sakamichi", model_pack=pipe.pack_name)
    galleries = IndexRegistry(settings, pipe.pack_name).galleries()
    side = settings.det_size  # the first decode of Pipeline.read: no smaller than the detector's input

    rows = []
    for path in one_face_photos()[: args.photos]:
        big, small = phone_jpeg(path, (4000, 3000)), phone_jpeg(path, (1155, 866))
        full = best_of(lambda b=big: decode_image(b, max_pixels=settings.max_pixels), args.repeat)
        reduced = best_of(
            lambda b=big: decode_image(b, max_pixels=settings.max_pixels, max_side=settings.det_size), args.repeat
        )
        answers = {}
        times = {}
        for name, data in (("12mp", big), ("1mp", small)):
            pipe.diagnose(data, galleries=galleries)  # warm
            times[name] = best_of(lambda d=data: pipe.diagnose(d, galleries=galleries), args.repeat)
            answers[name] = pipe.diagnose(data, galleries=galleries)
        pairs = list(zip(answers["12mp"].faces, answers["1mp"].faces, strict=False))
        same = len(answers["12mp"].faces) == len(answers["1mp"].faces) and all(
            x.verdict == y.verdict and x.matches[0].member_id == y.matches[0].member_id for x, y in pairs
        )
        sim_diff = max((abs(x.matches[0].similarity - y.matches[0].similarity) for x, y in pairs), default=0.0)
        rows.append(
            {
                "photo": f"{path.parent.name}/{path.name}",
                "decode_full_ms": round(full * 1000, 1),
                "decode_reduced_ms": round(reduced * 1000, 1),
                "diagnose_12mp_ms": round(times["12mp"] * 1000, 1),
                "diagnose_1mp_ms": round(times["1mp"] * 1000, 1),
                "ratio_12_to_1": round(times["12mp"] / times["1mp"], 2),
                "same_answer": same,
                "similarity_diff": round(sim_diff, 4),
            }
        )
    summary = {
        "decode_full_ms_p50": round(float(np.median([r["decode_full_ms"] for r in rows])), 1),
        "decode_reduced_ms_p50": round(float(np.median([r["decode_reduced_ms"] for r in rows])), 1),
        "ratio_12_to_1_p50": round(float(np.median([r["ratio_12_to_1"] for r in rows])), 2),
        "ratio_12_to_1_max": max(r["ratio_12_to_1"] for r in rows),
        "same_answer": sum(r["same_answer"] for r in rows),
        "photos": len(rows),
        "reduced_decode_max_side": side,
    }
    columns = list(rows[0])
    print(table(rows, columns))
    print(f"\n{summary}")
    print("wrote", write_json("decode_12mp", {"rows": rows, "summary": summary}))


if __name__ == "__main__":
    main()
