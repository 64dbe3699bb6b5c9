"""Suspected label errors: planted wrong photos are found, named with the member they look like, and kept out of
the calibration, so the thresholds do not move (synthetic clusters; real faces: test_calibration_real.py)."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.index.calibration import calibrate
from lookalike.index.suspects import screen
from tests.index.test_calibration import Floats, Ints, clustered


def moved(emb: Floats, members: Ints, face: int, to: int) -> tuple[Floats, Ints]:
    relabelled = members.copy()
    relabelled[face] = to
    return emb, relabelled


def copied(emb: Floats, members: Ints, face: int, to: int) -> tuple[Floats, Ints]:
    return np.concatenate([emb, emb[face : face + 1]]), np.concatenate([members, [to]]).astype(np.int64)


@pytest.fixture(scope="module")
def clean() -> tuple[Floats, Ints]:
    return clustered(40, 6, spread=1.0, seed=21)


def test_a_clean_gallery_has_no_suspects(clean: tuple[Floats, Ints]) -> None:
    assert screen(*clean, k=3, target_fmr=0.001).suspects == []


def test_a_photo_under_the_wrong_member_is_found(clean: tuple[Floats, Ints]) -> None:
    emb, members = clean
    face, true_member, wrong = 7, int(members[7]), int(members[30])
    screened = screen(*moved(emb, members, face, wrong), k=3, target_fmr=0.001)
    assert [s.face for s in screened.suspects] == [face]
    suspect = screened.suspects[0]
    assert (suspect.member, suspect.other_member, suspect.kind) == (wrong, true_member, "wrong_member")
    # The pair names the true member's photo closest to the wrong one, at a same-person similarity.
    assert members[suspect.other_face] == true_member and suspect.other_face != face
    assert suspect.similarity == pytest.approx(float(emb[face] @ emb[suspect.other_face]), abs=1e-4)
    assert suspect.own is not None and suspect.score > suspect.own
    assert face not in screened.kept


def test_a_photo_under_two_members_is_found_on_the_wrong_side(clean: tuple[Floats, Ints]) -> None:
    emb, members = clean
    screened = screen(*copied(emb, members, 12, int(members[40])), k=3, target_fmr=0.001)
    assert [s.face for s in screened.suspects] == [len(emb)]  # the copy, not the original
    assert screened.suspects[0].other_member == members[12]
    assert screened.suspects[0].similarity == pytest.approx(1.0, abs=1e-4)


def test_one_person_under_two_names_is_found(clean: tuple[Floats, Ints]) -> None:
    """A member filed again under a new name, with other photos of them: reported between the two names (as
    'wrong_member' or 'both', whichever name each photo looks more like) until none is left at the same-person
    level, and the calibration keeps none of them."""
    emb, members = clean
    second, _ = clustered(1, 12, spread=1.0, seed=21)  # member 0's centre (drawn first), 6 more photos of them
    emb2 = np.concatenate([emb, second[6:]])
    members2 = np.concatenate([members, np.full(6, 999)]).astype(np.int64)
    screened = screen(emb2, members2, k=3, target_fmr=0.001)
    assert screened.suspects
    pairs = [frozenset((s.member, s.other_member)) for s in screened.suspects]
    assert frozenset((int(members[0]), 999)) in pairs
    assert all(int(members[0]) in p or 999 in p for p in pairs)
    assert {s.kind for s in screened.suspects} <= {"both", "wrong_member"}
    assert np.all(screened.loo.impostor < min(s.score for s in screened.suspects))


@pytest.mark.parametrize("noise", ["move1", "move3", "move1pct", "copy1"])
def test_wrong_photos_do_not_move_the_thresholds(clean: tuple[Floats, Ints], noise: str) -> None:
    emb, members = clean
    rng = np.random.default_rng(5)
    base = calibrate(emb, members, k=3, target_fmr=0.001, lookalike_quantile=0.4).calibration
    noisy_emb, noisy = emb, members
    if noise == "copy1":
        noisy_emb, noisy = copied(emb, members, 3, int(members[100]))
    else:
        count = {"move1": 1, "move3": 3, "move1pct": max(1, round(0.01 * len(emb)))}[noise]
        for face in rng.choice(len(emb), count, replace=False):
            others = np.unique(members[members != members[face]])
            noisy_emb, noisy = moved(noisy_emb, noisy, int(face), int(rng.choice(others)))
    result = calibrate(noisy_emb, noisy, k=3, target_fmr=0.001, lookalike_quantile=0.4)
    assert abs(result.calibration.threshold - base.threshold) <= 0.02
    assert abs(result.calibration.lookalike_cut - base.lookalike_cut) <= 0.02
    assert result.calibration.n_suspects == len(result.suspects) >= 1
