"""The eval protocol's bookkeeping: who is a probe, who is an impostor, how LFW pairs and folds are read."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from lookalike.evaluation import best_threshold, identification, pair_similarity, read_pairs, split
from lookalike.pipeline.pipeline import Pipeline
from tests.conftest import DATA, DEMO


def _touch(root: Path, identity: str, *names: str) -> None:
    (root / identity).mkdir(parents=True, exist_ok=True)
    for name in names:
        (root / identity / name).write_bytes(b"")


def test_split_follows_the_protocol(tmp_path: Path) -> None:
    _touch(tmp_path, "alice", "01.jpg", "02.jpg", "03.jpg")
    _touch(tmp_path, "bob", "b.jpg", "a.jpg")
    _touch(tmp_path, "carol", "only.jpg")
    _touch(tmp_path, "dave", "1.jpg", "2.jpg")
    _touch(tmp_path, "erin", "1.jpg", "2.jpg", "3.jpg")
    (tmp_path / "empty").mkdir()

    gallery, probes = split(tmp_path, impostors=2)

    # The last photo by file name is the probe; the rest form the gallery.
    assert {k: [p.name for p in v] for k, v in gallery.items()} == {"alice": ["01.jpg", "02.jpg"], "bob": ["a.jpg"]}
    members = {(p.identity, p.path.name) for p in probes if p.is_member}
    assert members == {("alice", "03.jpg"), ("bob", "b.jpg")}
    # One photo: never in the gallery. The last 2 identities by name: all their photos are impostor probes.
    impostors = sorted((p.identity, p.path.name) for p in probes if not p.is_member)
    assert impostors == [
        ("carol", "only.jpg"),
        ("dave", "1.jpg"),
        ("dave", "2.jpg"),
        ("erin", "1.jpg"),
        ("erin", "2.jpg"),
        ("erin", "3.jpg"),
    ]


def test_lfw_pairs_file_is_read_in_lfw_layout(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("2\t1\nAnn_Lee\t1\t2\nAnn_Lee\t1\tBo_Wu\t3\nBo_Wu\t1\t3\nBo_Wu\t2\tAnn_Lee\t2\n")
    folds, read = read_pairs(pairs, tmp_path)
    assert folds == 2
    assert read[0] == (tmp_path / "Ann_Lee" / "Ann_Lee_0001.jpg", tmp_path / "Ann_Lee" / "Ann_Lee_0002.jpg", True)
    assert read[1] == (tmp_path / "Ann_Lee" / "Ann_Lee_0001.jpg", tmp_path / "Bo_Wu" / "Bo_Wu_0003.jpg", False)
    assert [same for _, _, same in read] == [True, False, True, False]


def test_threshold_is_chosen_to_maximise_accuracy() -> None:
    sims = np.array([0.1, 0.2, 0.25, 0.6, 0.7, 0.9], dtype=np.float32)
    same = np.array([False, False, False, True, True, True])
    t = best_threshold(sims, same)
    assert 0.25 < t < 0.6


def test_a_pair_without_a_face_counts_as_different() -> None:
    e = np.ones(4, dtype=np.float32) / 2
    assert pair_similarity(e, None) == -1.0
    assert abs(pair_similarity(e, e) - 1.0) < 1e-6


def test_identification_with_strangers_reports_the_verdicts_steadiness_and_suspects(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """The demo gallery against the strangers folder, with the session's real models: every metric of the three
    verdicts, read off real answers. The gallery folder gets one photo of Asuka Saito filed under Mai Shiraishi:
    the suspect report names it."""
    gallery = tmp_path / "gallery"
    shutil.copytree(DEMO, gallery)
    moved = gallery / "shiraishi_mai" / "00_asuka.jpg"  # sorts first: stays in the gallery, not the probe
    shutil.copy(DEMO / "saito_asuka" / "01.jpg", moved)
    report = identification(pipeline.settings, pipeline, gallery, strangers=[DATA / "strangers"])
    assert report["member_probes"] == 5 and report["stranger_probes"] == 12
    assert report["top1"] == report["tpir_same_person"] == report["tpir"] == report["tpir_lookalike"] == 1.0
    assert report["stranger_fpir"] == report["same_person_rate"] == 0.0
    strangers = report["strangers"]["strangers"]
    assert strangers["by_identity"]["lia_itzy"]["lookalike"] == 2  # a Korean idol who resembles Miona Hori
    assert strangers["by_identity"]["bill_gates"]["lookalike"] == 0
    assert report["lookalike_rate"] == pytest.approx(2 / 12, abs=1e-4)
    low, high = report["threshold_interval"]
    assert low <= report["threshold"] <= high and report["impostor_scores"] >= 20
    assert report["lookalike_threshold"] < report["threshold"]
    assert report["lookalike_quantile"] == pipeline.settings.lookalike_quantile
    [suspect] = report["suspect_pairs"]
    assert (Path(suspect["photo"]), suspect["member"], suspect["other_member"]) == (
        moved,
        "shiraishi_mai",
        "saito_asuka",
    )
    for key in ("pair_agreement", "pair_agreement_top3", "hub_share", "hub_share_uniform"):
        assert 0.0 <= report[key] <= 1.0, key
    assert report["pair_agreement"] <= report["pair_agreement_top3"]
    assert report["pair_agreement_2photo"] is None  # no stranger here has 4 photos
    assert report["count_bias"] is None or -1.0 <= report["count_bias"] <= 1.0
