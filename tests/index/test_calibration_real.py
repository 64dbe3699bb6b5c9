"""Calibration on real faces: the photos shipped in the repository, embedded by the real model. A wrong photo
planted in the gallery is found, named, and set aside: the thresholds are exactly those of the gallery without
it (on galleries this small one photo more or less moves the fitted tail by a few hundredths; the full-size
galleries of ../shared, with 1 to 1 % wrong photos, are measured by bench/label_noise.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lookalike.index.calibration import Calibrated, calibrate
from lookalike.index.crowd import TILES, Crowd
from lookalike.index.scoring import member_top_k
from lookalike.ingest.local import member_folders, photo_files
from lookalike.pipeline.pipeline import Pipeline
from tests.conftest import DATA, DEMO
from tests.index.test_calibration import Floats, Ints


@pytest.fixture(scope="module")
def real(pipeline: Pipeline) -> tuple[Floats, Ints, list[str]]:
    """17 people, 3-7 photos each: the demo members (gallery and probe photos), the mini gallery, the strangers."""
    photos: dict[str, list[Path]] = {}
    for root in (DEMO, DATA / "probes", DATA / "mini_gallery", DATA / "strangers"):
        for folder in member_folders(root):
            photos.setdefault(folder.name, []).extend(photo_files(folder))
    names = sorted(n for n, p in photos.items() if len(p) >= 2)
    emb, members = [], []
    for i, name in enumerate(names):
        for path in photos[name]:
            _, mains = pipeline.read_person([path.read_bytes()])
            emb.append(mains[0].embedding)
            members.append(i)
    return np.stack(emb).astype(np.float32), np.array(members, np.int64), names


def run(emb: Floats, members: Ints, crowd: Crowd) -> Calibrated:
    return calibrate(emb, members, k=3, target_fmr=0.001, lookalike_quantile=0.4, crowd=crowd)


def test_the_clean_real_gallery(real: tuple[Floats, Ints, list[str]], crowd: Crowd) -> None:
    emb, members, names = real
    result = run(emb, members, crowd)
    cal = result.calibration
    assert len(names) >= 15 and len(emb) >= 60
    assert result.suspects == []
    # The crowd and the repository's test photos come from the same collection: the people in both are left out
    # of this gallery's crowd (they would be the member themself, not someone else).
    crowd_names = {line.split("\t")[1] for line in TILES.read_text().splitlines()[1:]}
    assert cal.crowd["people"] == 69 - len(crowd_names & set(names))
    low, high = cal.threshold_interval
    assert low <= cal.threshold <= high
    # Most photos are the same person as the rest of their member's photos. Not all: this gallery mixes Japanese
    # idols, who resemble each other (impostor scores near 0.3), with Western faces (near 0.1), and one threshold
    # must keep a Japanese stranger from being called one of the idols (docs/matching.md, "Mixed galleries").
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    own = member_top_k(sims, members, k=3)[np.arange(len(emb)), members]
    assert np.median(own) >= cal.threshold
    # The lookalike threshold sits between the members' own scores and nothing.
    assert cal.lookalike_threshold is not None and 0.0 < cal.lookalike_threshold < cal.threshold


@pytest.mark.parametrize(
    ("photo_of", "filed_under", "copy"),
    [("saito_asuka", "bill_gates", False), ("george_w_bush", "tiger_woods", False), ("hori_miona", "ikoma_rina", True)],
)
def test_a_wrong_photo_is_found_and_moves_no_threshold(
    real: tuple[Floats, Ints, list[str]], crowd: Crowd, photo_of: str, filed_under: str, copy: bool
) -> None:
    emb, members, names = real
    clean = run(emb, members, crowd).calibration
    face = int(np.flatnonzero(members == names.index(photo_of))[0])
    wrong = names.index(filed_under)
    if copy:  # the same photo uploaded under a second member
        noisy_emb = np.concatenate([emb, emb[face : face + 1]])
        noisy = np.concatenate([members, [wrong]]).astype(np.int64)
        planted = len(emb)
    else:
        noisy_emb, noisy = emb, members.copy()
        noisy[face] = wrong
        planted = face
    result = run(noisy_emb, noisy, crowd)
    assert [s.face for s in result.suspects] == [planted]
    assert result.suspects[0].other_member == names.index(photo_of)
    assert result.suspects[0].member == wrong
    keep = np.arange(len(noisy_emb)) != planted
    without = run(noisy_emb[keep], noisy[keep], crowd).calibration
    got = result.calibration
    assert (got.threshold, got.lookalike_threshold) == (without.threshold, without.lookalike_threshold)
    if copy:
        assert (got.threshold, got.lookalike_threshold) == (clean.threshold, clean.lookalike_threshold)
