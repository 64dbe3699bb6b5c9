"""The lookalike protocol of issue 14 on ../shared/data/faces/east_asian, by one command.

east_asian/PEOPLE.tsv describes 21 people. The gallery is the 7 Japanese women idols (the seed's kind of group);
the strangers are the 8 Korean women idols (the same demographic as the fans), the 6 men (one a producer in his
sixties) and, with --western DIR, Western faces (lfw_lookalike/strangers). The folders are linked into a scratch
directory and measured by `lookalike eval DIR --strangers ...` (lookalike.evaluation.identification), so the
figures are the ones the CLI prints.

    python bench/lookalike_protocol.py ../shared/data/faces/east_asian \
        --western ../shared/data/faces/lfw_lookalike/strangers
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

from lookalike.config import Settings
from lookalike.evaluation import identification
from lookalike.pipeline.pipeline import Pipeline

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table, write_json


def split_people(east_asian: Path, root: Path) -> dict[str, Path]:
    """jp_women (the gallery), kr_women and men, as folders of links to east_asian/<identity>."""
    with (east_asian / "PEOPLE.tsv").open() as fh:
        people = list(csv.DictReader(fh, delimiter="\t"))
    folders = {name: root / name for name in ("jp_women", "kr_women", "men")}
    for folder in folders.values():
        folder.mkdir()
    for person in people:
        women = "jp_women" if person["country"] == "JP" else "kr_women"
        name = "men" if person["gender"] == "M" else women
        (folders[name] / person["identity"]).symlink_to((east_asian / person["identity"]).resolve())
    return folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("east_asian", type=Path)
    parser.add_argument("--western", type=Path, help="a folder of Western strangers, DIR/<identity>/<photos>")
    args = parser.parse_args()
    settings = Settings()
    with tempfile.TemporaryDirectory(prefix="lookalike-protocol-") as scratch:
        folders = split_people(args.east_asian, Path(scratch))
        strangers = [folders["kr_women"], folders["men"]] + ([args.western] if args.western else [])
        report = identification(settings, Pipeline(settings), folders["jp_women"], strangers=strangers)
    rows = [
        {
            "probes": "members (jp_women)",
            "photos": report["member_probes"],
            "lookalike": report["tpir_lookalike"],
            "same_person": report["tpir_same_person"],
        },
    ]
    for name, entry in report["strangers"].items():
        rows.append(
            {
                "probes": name,
                "photos": entry["photos"],
                "lookalike": entry["lookalike_rate"],
                "same_person": entry["same_person_rate"],
            }
        )
    print(table(rows, ["probes", "photos", "lookalike", "same_person"]))
    producer = report["strangers"]["men"]["by_identity"].get("akimoto_yasushi", {})
    print(f"producer in his sixties: {producer.get('lookalike', 0)} of {producer.get('photos', 0)} photos lookalike")
    keys = ("threshold", "threshold_interval", "lookalike_threshold", "lookalike_interval", "lookalike_quantile")
    print(json.dumps({k: report[k] for k in keys}))
    write_json("lookalike_protocol", {"report": report})


if __name__ == "__main__":
    main()
