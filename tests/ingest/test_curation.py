"""Curation of scraped member photos, on real photos with the real buffalo_s models.

Candidate sets are built from the demo gallery (5 members x 5 photos) and tests/data/faces: each member's own
photos, photos of other members, strangers (East Asian and Western), group photos, and photos made worse on
purpose (a tiny face, a blurred one). Group photos with the member are synthetic: photos side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from lookalike.imaging import decode_image
from lookalike.ingest.curation import (
    BUFFALO_S,
    CandidatePhoto,
    Decision,
    Thresholds,
    candidate_photo,
    curate_group,
    curate_member,
    find_identity,
)
from lookalike.pipeline.aligner import ARCFACE_TEMPLATE
from lookalike.pipeline.pipeline import Pipeline
from lookalike.pipeline.quality import MIN_FACE_PX, MIN_FRONTAL, assess, frontality, head_pose
from lookalike.pipeline.types import Detection, FloatArray

REPO = Path(__file__).resolve().parents[2]
FACES = REPO / "tests" / "data" / "faces"
DEMO = REPO / "demo" / "gallery"
MEMBERS = sorted(d.name for d in DEMO.iterdir() if d.is_dir())
STRANGERS = ["jisoo_blackpink", "lia_itzy", "rm_bts", "bill_gates", "meryl_streep", "simon_helberg"]
RGB = npt.NDArray[np.uint8]


def files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jpg"))


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def rgb_of(path: Path) -> RGB:
    return np.asarray(decode_image(path.read_bytes(), max_pixels=40_000_000).rgb, dtype=np.uint8)


def jpeg(rgb: RGB) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return bytes(buf.tobytes())


def side_by_side(paths: Sequence[Path], height: int = 400) -> tuple[bytes, list[tuple[int, int]]]:
    """A synthetic group photo, and the x-range each part occupies."""
    parts = []
    for p in paths:
        rgb = rgb_of(p)
        parts.append(cv2.resize(rgb, (round(rgb.shape[1] * height / rgb.shape[0]), height)))
    spans, x = [], 0
    for part in parts:
        spans.append((x, x + part.shape[1]))
        x += part.shape[1]
    return jpeg(np.hstack(parts)), spans


def shrunk_face(path: Path, face_px: float, pipeline: Pipeline) -> bytes:
    """The photo scaled so that its face is about `face_px` wide, on a plain 480x480 canvas."""
    rgb = rgb_of(path)
    (face,) = pipeline.analyze(pipeline.decode(path.read_bytes()))
    factor = face_px / min(face.detection.width, face.detection.height)
    small = cv2.resize(rgb, (round(rgb.shape[1] * factor), round(rgb.shape[0] * factor)), interpolation=cv2.INTER_AREA)
    canvas = np.full((480, 480, 3), 128, dtype=np.uint8)
    canvas[: small.shape[0], : small.shape[1]] = small[:480, :480]
    return jpeg(canvas)


def blurred(path: Path, pipeline: Pipeline, sigma_in_crop: float = 3.0) -> bytes:
    """The photo blurred as much as a Gaussian of `sigma_in_crop` px on the 112-px aligned face."""
    rgb = rgb_of(path)
    (face,) = pipeline.analyze(pipeline.decode(path.read_bytes()))
    sigma = sigma_in_crop * min(face.detection.width, face.detection.height) / 112
    return jpeg(np.asarray(cv2.GaussianBlur(rgb, (0, 0), sigma), dtype=np.uint8))


@pytest.fixture(scope="module")
def photos(pipeline: Pipeline) -> dict[str, CandidatePhoto]:
    paths = [p for m in MEMBERS for p in files(DEMO / m)]
    for sub in ("probes", "strangers", "mini_gallery"):
        paths += [p for d in sorted((FACES / sub).iterdir()) for p in files(d)]
    paths += files(FACES / "group") + files(FACES / "hard") + files(FACES / "noface")
    return {rel(p): candidate_photo(pipeline, rel(p), p.read_bytes()) for p in paths}


def own(member: str) -> list[str]:
    """The member's photos in their own set: the 5 gallery photos and the first probe (the second probe is
    "scraped" into another member's set, so it never vouches for itself through its owner's centroid)."""
    return [rel(p) for p in files(DEMO / member)] + [rel(files(FACES / "probes" / member)[0])]


def lent(member: str) -> str:
    return rel(files(FACES / "probes" / member)[1])


def stranger(i: int, k: int = 0) -> str:
    return rel(files(FACES / "strangers" / STRANGERS[i % len(STRANGERS)])[k])


def member_sets() -> dict[str, tuple[list[str], list[str]]]:
    """Per member: (right, wrong). Wrong: the next member's photo, an East Asian and a Western stranger, and a
    group photo of five people who are not the member: 4 wrong photos in 10 (40%)."""
    sets = {}
    for i, m in enumerate(MEMBERS):
        wrong = [lent(MEMBERS[(i + 1) % len(MEMBERS)]), stranger(i % 3), stranger(3 + i % 3, 1)]
        sets[m] = (own(m), [*wrong, rel(FACES / "group" / "02.jpg")])
    return sets


def decide(
    photos: dict[str, CandidatePhoto],
    keys: Sequence[str],
    *,
    others: dict[str, FloatArray] | None = None,
    thresholds: Thresholds = BUFFALO_S,
) -> dict[str, Decision]:
    decisions = curate_member([photos[k] for k in keys], others=others or {}, thresholds=thresholds)
    assert [d.key for d in decisions] == list(keys)
    return {d.key: d for d in decisions}


def centroid(photos: dict[str, CandidatePhoto], keys: Sequence[str]) -> FloatArray:
    emb = np.stack([photos[k].faces[0].embedding for k in keys]).mean(axis=0)
    return np.asarray(emb / np.linalg.norm(emb), dtype=np.float32)


# --------------------------------------------------------------------------- face quality


def test_normal_faces_are_usable(photos: dict[str, CandidatePhoto]) -> None:
    normal = {k: p for k, p in photos.items() if not k.startswith(("tests/data/faces/hard", "tests/data/faces/noface"))}
    assert len(normal) > 70
    for key, photo in normal.items():
        assert photo.faces, key
        for face in photo.faces:
            assert face.quality.usable, (key, face.quality)
            assert face.quality.reasons == ()


def test_three_quarter_views_are_usable(photos: dict[str, CandidatePhoto]) -> None:
    # buffalo_s embeds them well (see pipeline/quality.py): only near-profiles are refused.
    for name in ("04.jpg", "05.jpg", "06.jpg"):
        (face,) = photos[rel(FACES / "hard" / name)].faces
        assert face.quality.usable
        assert MIN_FRONTAL < face.quality.frontal < 0.85


def test_profile_landmarks_are_not_frontal(photos: dict[str, CandidatePhoto], pipeline: Pipeline) -> None:
    template = ARCFACE_TEMPLATE.astype(np.float32)
    assert frontality(template) > 0.97
    yaw, pitch = head_pose(template)
    assert abs(yaw) < 3 and abs(pitch) < 10
    # A profile: the eyes nearly on top of each other, the nose far out to one side of them.
    profile = np.array([[50, 50], [57, 50], [38, 70], [47, 90], [53, 90]], dtype=np.float32)
    assert frontality(profile) < MIN_FRONTAL
    assert head_pose(profile)[0] < -60
    crop = np.asarray(cv2.resize(rgb_of(DEMO / MEMBERS[0] / "01.jpg"), (112, 112)), dtype=np.uint8)
    quality = assess(Detection(box=(0.0, 0.0, 200.0, 200.0), score=0.9, landmarks=profile), crop)
    assert quality.reasons == ("not_frontal",)
    assert not quality.usable


def test_tiny_face_is_too_small(pipeline: Pipeline) -> None:
    path = files(FACES / "probes" / MEMBERS[1])[0]
    photo = candidate_photo(pipeline, "tiny", shrunk_face(path, 24, pipeline))
    (face,) = photo.faces
    assert face.quality.size_px < MIN_FACE_PX
    assert "too_small" in face.quality.reasons
    assert not face.quality.usable


def test_blurred_face_is_blurred(pipeline: Pipeline) -> None:
    path = files(FACES / "probes" / MEMBERS[1])[0]
    (sharp,) = candidate_photo(pipeline, "sharp", path.read_bytes()).faces
    (face,) = candidate_photo(pipeline, "blurred", blurred(path, pipeline)).faces
    assert face.quality.reasons == ("blurred",)
    assert face.quality.sharpness < sharp.quality.sharpness / 2
    assert face.quality.size_px > MIN_FACE_PX


# --------------------------------------------------------------------------- curation


def test_each_member_keeps_own_photos_and_drops_the_rest(photos: dict[str, CandidatePhoto]) -> None:
    for member, (right, wrong) in member_sets().items():
        decisions = decide(photos, right + wrong)
        for key in right:
            d = decisions[key]
            assert (d.status, d.reason, d.face_index) == ("ok", "member", 0), (member, d)
            assert d.score is not None and d.score >= BUFFALO_S.keep
        for key in wrong:
            assert decisions[key].status != "ok", (member, decisions[key])
        # Strangers are clearly someone else: rejected, not merely flagged.
        for key in wrong[1:]:
            assert (decisions[key].status, decisions[key].reason) == ("rejected", "wrong_person"), (member, key)


def test_group_curation_names_the_other_member(photos: dict[str, CandidatePhoto]) -> None:
    sets = member_sets()
    result = curate_group({m: [photos[k] for k in right + wrong] for m, (right, wrong) in sets.items()})
    for i, (member, (right, wrong)) in enumerate(sets.items()):
        by_key = {d.key: d for d in result[member]}
        assert all(by_key[k].status == "ok" for k in right), member
        other = MEMBERS[(i + 1) % len(MEMBERS)]
        assert (by_key[wrong[0]].status, by_key[wrong[0]].reason) == ("rejected", f"other_member:{other}")
        assert all(by_key[k].status == "rejected" for k in wrong)


def test_others_as_embeddings_or_centroids(photos: dict[str, CandidatePhoto]) -> None:
    right, wrong = member_sets()[MEMBERS[0]]
    other = MEMBERS[1]
    as_matrix = np.stack([photos[k].faces[0].embedding for k in own(other)])
    a = decide(photos, right + wrong, others={other: as_matrix})
    b = decide(photos, right + wrong, others={other: centroid(photos, own(other))})
    assert a == b
    assert a[wrong[0]].reason == f"other_member:{other}"


def test_group_photo_with_the_member_picks_the_members_face(
    photos: dict[str, CandidatePhoto], pipeline: Pipeline
) -> None:
    member = MEMBERS[2]
    probe = files(FACES / "probes" / member)[0]
    parts = [FACES / "strangers" / "lia_itzy" / "06.jpg", probe, FACES / "strangers" / "meryl_streep" / "06.jpg"]
    data, spans = side_by_side(parts)
    group = candidate_photo(pipeline, "group-with-member", data)
    assert len(group.faces) == 3
    keys = [k for k in own(member) if k != rel(probe)]
    set_ = {**photos, "group-with-member": group}
    d = decide(set_, [*keys, "group-with-member"])["group-with-member"]
    assert (d.status, d.reason) == ("ok", "member")
    assert d.face_index is not None
    box = pipeline.analyze(pipeline.decode(data))[d.face_index].detection.box
    assert spans[1][0] <= (box[0] + box[2]) / 2 < spans[1][1]


def test_two_faces_of_the_member_in_one_photo_are_flagged(
    photos: dict[str, CandidatePhoto], pipeline: Pipeline
) -> None:
    member = MEMBERS[3]
    probes = files(FACES / "probes" / member)
    data, _ = side_by_side([probes[0], probes[1]])
    twice = candidate_photo(pipeline, "twice", data)
    keys = [rel(p) for p in files(DEMO / member)]
    d = decide({**photos, "twice": twice}, [*keys, "twice"])["twice"]
    assert (d.status, d.reason) == ("flagged", "ambiguous_faces")


def test_small_blurred_and_faceless_photos_are_rejected_with_the_reason(
    photos: dict[str, CandidatePhoto], pipeline: Pipeline
) -> None:
    member = MEMBERS[4]
    right, wrong = member_sets()[member]
    probe = files(FACES / "probes" / member)[1]
    extra = {
        "tiny": candidate_photo(pipeline, "tiny", shrunk_face(probe, 24, pipeline)),
        "blurred": candidate_photo(pipeline, "blurred", blurred(probe, pipeline)),
    }
    noface = rel(FACES / "noface" / "04.jpg")
    decisions = decide({**photos, **extra}, [*right, *wrong, "tiny", "blurred", noface])
    assert (decisions["tiny"].status, decisions["tiny"].reason, decisions["tiny"].face_index) == (
        "rejected",
        "too_small",
        0,
    )
    assert (decisions["blurred"].status, decisions["blurred"].reason) == ("rejected", "blurred")
    assert (decisions[noface].status, decisions[noface].reason, decisions[noface].face_index) == (
        "rejected",
        "no_usable_face",
        None,
    )
    assert all(decisions[k].status == "ok" for k in right)


def test_too_few_photos_are_flagged_not_rejected(photos: dict[str, CandidatePhoto]) -> None:
    member = MEMBERS[0]
    keys = [*own(member)[:2], stranger(3)]
    decisions = decide(photos, keys)
    assert {(d.status, d.reason) for d in decisions.values()} == {("flagged", "no_consensus")}
    decisions = decide(photos, own(member)[:2])
    assert {(d.status, d.reason) for d in decisions.values()} == {("flagged", "too_few_photos")}


def test_a_majority_of_wrong_photos_is_flagged(photos: dict[str, CandidatePhoto]) -> None:
    # 3 photos of the member among 5 of other people (other members and strangers): the member is still the
    # largest cluster, but they fit fewer than half the photos, so nothing is kept and nothing is rejected as
    # someone else: a human decides.
    member = MEMBERS[1]
    wrong = [lent(MEMBERS[2]), lent(MEMBERS[3]), stranger(0), stranger(1), stranger(4)]
    keys = [*own(member)[:3], *wrong]
    consensus = find_identity([photos[k] for k in keys])
    assert consensus.identity is None
    assert consensus.reason == "no_majority"
    decisions = decide(photos, keys)
    assert {(d.status, d.reason) for d in decisions.values()} == {("flagged", "no_majority")}


def test_a_set_that_is_mostly_another_member(photos: dict[str, CandidatePhoto]) -> None:
    # The scraper mostly found another member: their 5 photos outnumber the member's 3. Alone, nothing in the
    # photos says which of the two people is the member: everything is flagged. With the other member's
    # centroid their photos are explained, and the member's own are kept.
    member, other = MEMBERS[0], MEMBERS[4]
    mine, theirs = own(member)[:3], [rel(p) for p in files(DEMO / other)]
    decisions = decide(photos, mine + theirs)
    assert {(d.status, d.reason) for d in decisions.values()} == {("flagged", "two_identities")}
    others = {other: centroid(photos, [rel(p) for p in files(FACES / "probes" / other)])}
    decisions = decide(photos, mine + theirs, others=others)
    assert all((decisions[k].status, decisions[k].reason) == ("ok", "member") for k in mine)
    assert all((decisions[k].status, decisions[k].reason) == ("rejected", f"other_member:{other}") for k in theirs)


def test_a_set_of_another_member_is_flagged_as_theirs(photos: dict[str, CandidatePhoto]) -> None:
    # Only another member's photos (a scraper that searched the wrong name): with the group's centroids no
    # identity is adopted, nothing is kept, and every photo is flagged as that member's.
    other = MEMBERS[4]
    theirs = [rel(p) for p in files(DEMO / other)]
    others = {other: centroid(photos, [rel(p) for p in files(FACES / "probes" / other)])}
    assert find_identity([photos[k] for k in theirs], others=others).identity is None
    decisions = decide(photos, theirs, others=others)
    assert {(d.status, d.reason) for d in decisions.values()} == {("flagged", f"other_member:{other}")}


def test_thresholds_are_parameters(photos: dict[str, CandidatePhoto]) -> None:
    right, wrong = member_sets()[MEMBERS[0]]
    strict = Thresholds(keep=0.95, reject=0.9)
    decisions = decide(photos, right + wrong, thresholds=strict)
    assert not any(d.status == "ok" for d in decisions.values())
