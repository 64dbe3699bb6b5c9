"""The eval protocol's bookkeeping: who is a probe, who is an impostor, how LFW pairs and folds are read."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lookalike.evaluation import best_threshold, pair_similarity, read_pairs, split


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
