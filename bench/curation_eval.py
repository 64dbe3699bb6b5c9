"""Evaluate automatic curation (lookalike.ingest.curation) on simulated scraped galleries.

For each trial a group of members is drawn from a face set DIR/<identity>/<photos> (the rest are outsiders).
Each member's candidate set is three quarters of their own photos (two of them inside synthetic group photos
with two other members: the photos side by side) plus wrong photos, 30% (then 45%) of the set: a real group
photo from DIR/group (a right photo when the manifest lists the member in it), a synthetic group photo of
three other members, and single photos of a few other members and outsiders (--wrong-people; scraped wrong
photos come in runs of the same person). Other members' photos come from the quarter of their photos that is
kept out of their own set. Every member is curated alone and with the group (curate_group: the other
members' centroids as negatives).

Prints, per face set and wrong share: wrong photos dropped or flagged, right photos kept (status ok), right
photos flagged, right photos wrongly rejected. Targets: >= 90% of wrong photos dropped or flagged, >= 95% of
right photos kept.

    .venv/bin/python bench/curation_eval.py                 # east_asian and gallery from /work/shared/data/faces
    .venv/bin/python bench/curation_eval.py --derive        # the measurements behind the default thresholds
    .venv/bin/python bench/curation_eval.py --cache /tmp/c.pkl --wrong-people 2   # reuse analysed photos

The first run analyses ~900 photos and ~2000 synthetic group photos on the CPU (about 10 minutes); with
--cache later runs take seconds.

Needs the shared face set (not part of the repository) and the buffalo_s models.
"""

from __future__ import annotations

import argparse
import csv
import pickle
import random
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from lookalike.config import Settings
from lookalike.imaging import DecodedImage
from lookalike.ingest.curation import (
    BUFFALO_S,
    CandidatePhoto,
    Decision,
    Thresholds,
    candidate_photo,
    curate_group,
    curate_member,
)
from lookalike.pipeline.aligner import align
from lookalike.pipeline.pipeline import Pipeline
from lookalike.pipeline.quality import frontality, sharpness
from lookalike.pipeline.types import Detection, FloatArray, main_face

FACES = Path("/work/shared/data/faces")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


@dataclass(frozen=True)
class Photo:
    key: str  # dataset/identity/file
    people: frozenset[str]  # who is in it (group photos: several)
    candidate: CandidatePhoto


def load_photos(
    pipeline: Pipeline, paths: dict[str, tuple[Path, frozenset[str]]], cached: dict[str, CandidatePhoto]
) -> list[Photo]:
    out = []
    for key, (path, people) in sorted(paths.items()):
        if key not in cached:
            cached[key] = candidate_photo(pipeline, key, path.read_bytes())
        out.append(Photo(key, people, cached[key]))
    return out


def face_set(root: Path) -> dict[str, tuple[Path, frozenset[str]]]:
    return {
        f"{root.name}/{d.name}/{p.name}": (p, frozenset({d.name}))
        for d in sorted(root.iterdir())
        if d.is_dir()
        for p in sorted(d.iterdir())
        if p.suffix.lower() in IMAGE_SUFFIXES
    }


def group_photos(root: Path, manifest: Path) -> dict[str, tuple[Path, frozenset[str]]]:
    people: dict[str, frozenset[str]] = {}
    if manifest.is_file():
        with manifest.open() as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                if row["local_path"].startswith(f"{root.name}/"):
                    names = {n for n in row["identity"].split(";") if n and n != "unknown"}
                    people[row["local_path"]] = frozenset(names)
    return {
        f"{root.name}/{p.name}": (p, people.get(f"{root.name}/{p.name}", frozenset()))
        for p in sorted(root.iterdir())
        if p.suffix.lower() in IMAGE_SUFFIXES
    }


@dataclass
class Tally:
    right: int = 0
    right_ok: int = 0
    right_flagged: int = 0
    right_rejected: int = 0
    wrong: int = 0
    wrong_caught: int = 0  # rejected or flagged
    wrong_kept: int = 0
    no_identity_sets: int = 0
    sets: int = 0

    def add(self, is_right: bool, d: Decision) -> None:
        if is_right:
            self.right += 1
            self.right_ok += d.status == "ok"
            self.right_flagged += d.status == "flagged"
            self.right_rejected += d.status == "rejected"
        else:
            self.wrong += 1
            self.wrong_caught += d.status != "ok"
            self.wrong_kept += d.status == "ok"

    def line(self) -> str:
        def pct(a: int, b: int) -> str:
            return f"{100 * a / b:5.1f}%" if b else "  n/a "

        return (
            f"wrong dropped/flagged {pct(self.wrong_caught, self.wrong)} (kept {self.wrong_kept}/{self.wrong})  "
            f"right kept {pct(self.right_ok, self.right)}  flagged {pct(self.right_flagged, self.right)}  "
            f"rejected {pct(self.right_rejected, self.right)}  (n right {self.right}, sets {self.sets}, "
            f"without identity {self.no_identity_sets})"
        )


class Collages:
    """Synthetic group photos: several people's photos side by side, analysed like any photo (cached)."""

    def __init__(self, pipeline: Pipeline, paths: dict[str, Path], cache: dict[str, CandidatePhoto]) -> None:
        self.pipeline, self.paths, self.cache = pipeline, paths, cache

    def make(self, parts: Sequence[Photo]) -> Photo:
        key = "collage/" + "+".join(p.key for p in parts)
        if key not in self.cache:
            rgbs = [self.pipeline.decode(self.paths[p.key].read_bytes()).rgb for p in parts]
            # A common height that neither shrinks nor blows up the typical part (their median height).
            height = min(800, int(np.median([r.shape[0] for r in rgbs])))
            row = np.hstack(
                [
                    cv2.resize(r, (round(r.shape[1] * height / r.shape[0]), height), interpolation=cv2.INTER_AREA)
                    for r in rgbs
                ]
            )
            ok, jpeg = cv2.imencode(".jpg", np.ascontiguousarray(row[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 90])
            assert ok
            self.cache[key] = candidate_photo(self.pipeline, key, jpeg.tobytes())
        return Photo(key, frozenset().union(*(p.people for p in parts)), self.cache[key])


def _take(rng: random.Random, spare: dict[str, list[Photo]], n: int) -> list[Photo]:
    """One unused photo each of `n` people who have one left."""
    people = [x for x in rng.sample(list(spare), len(spare)) if spare[x]][:n]
    return [spare[x].pop() for x in people]


def build_sets(
    rng: random.Random,
    by_person: dict[str, list[Photo]],
    groups: list[Photo],
    collages: Collages,
    members: Sequence[str],
    wrong_share: float,
    wrong_people: int,
) -> dict[str, list[tuple[Photo, bool]]]:
    """Each member's candidate set: (photo, is the member in it).

    A quarter of every member's photos is lent out: those appear only in the OTHER members' sets (as wrong
    photos, alone or in group photos), never in the member's own, so with curate_group a wrong photo is never
    recognised as the other member by being part of that member's own centroid."""
    outsiders = [p for p in by_person if p not in members]
    lent: dict[str, list[Photo]] = {}
    own_of: dict[str, list[Photo]] = {}
    for m in members:
        photos = list(by_person[m])
        rng.shuffle(photos)
        n_lent = max(1, len(photos) // 4)
        lent[m], own_of[m] = photos[:n_lent], photos[n_lent:]
    sets: dict[str, list[tuple[Photo, bool]]] = {}
    for m in members:
        others = [x for x in members if x != m]
        # Each lent photo at most once per set (a photo scraped three times would be a cluster of its own).
        spare = {x: rng.sample(lent[x], len(lent[x])) for x in others}
        own = list(own_of[m])
        # Group photos of the member with two other members: own photos moved into a collage, not duplicated.
        n_with = 2 if len(own) >= 8 else 1
        items = [(collages.make([own.pop(), *_take(rng, spare, 2)]), True) for _ in range(n_with)]
        items += [(p, True) for p in own]
        n_wrong = round(wrong_share / (1 - wrong_share) * len(items))
        # Group photos without the member: a real one and a collage of three other members.
        for g in rng.sample(groups, 1):
            items.append((g, m in g.people))
        items.append((collages.make(_take(rng, spare, 3)), False))
        # Runs of the same wrong person: the single wrong photos come in turns from a few other members and
        # outsiders (--wrong-people), so each of them recurs; fewer people, longer runs.
        people = rng.sample(others, wrong_people // 2) + rng.sample(outsiders, wrong_people - wrong_people // 2)
        queues = {x: spare[x] if x in spare else rng.sample(by_person[x], len(by_person[x])) for x in people}
        n_solo = n_wrong - sum(1 for _, right in items if not right)
        turn = 0
        while n_solo > 0 and any(queues.values()):
            queue = queues[people[turn % len(people)]]
            turn += 1
            if queue:
                items.append((queue.pop(), False))
                n_solo -= 1
        rng.shuffle(items)
        sets[m] = items
    return sets


def evaluate(
    name: str,
    photos: list[Photo],
    groups: list[Photo],
    collages: Collages,
    *,
    trials: int,
    shares: Sequence[float],
    wrong_people: int,
    group_size: int,
    thresholds: Thresholds,
    verbose: bool,
) -> dict[tuple[float, str], Tally]:
    by_person: dict[str, list[Photo]] = defaultdict(list)
    for p in photos:
        (person,) = p.people
        by_person[person].append(p)
    eligible = sorted(p for p, lst in by_person.items() if len(lst) >= 4)
    tallies: dict[tuple[float, str], Tally] = defaultdict(Tally)
    reasons: Counter[tuple[str, bool, str]] = Counter()
    for share in shares:
        for trial in range(trials):
            rng = random.Random(f"{name}-{share}-{trial}")
            members = rng.sample(eligible, min(group_size, len(eligible)))
            sets = build_sets(rng, by_person, groups, collages, members, share, wrong_people)
            cands = {m: [p.candidate for p, _ in items] for m, items in sets.items()}
            results = {
                "alone": {m: curate_member(c, thresholds=thresholds) for m, c in cands.items()},
                "group": curate_group(cands, thresholds=thresholds),
            }
            for mode, per_member in results.items():
                tally = tallies[(share, mode)]
                for m, decisions in per_member.items():
                    tally.sets += 1
                    tally.no_identity_sets += all(d.score is None for d in decisions)
                    for (photo, right), d in zip(sets[m], decisions, strict=True):
                        tally.add(right, d)
                        reasons[(mode, right, d.status + ":" + d.reason.split(":")[0])] += 1
                        if verbose and mode == "group" and (right != (d.status == "ok")):
                            print(f"  {share} {m:24s} {'RIGHT' if right else 'wrong'} {photo.key:45s} {d}")
    print(f"\n== {name}: {len(photos)} photos, {len(eligible)} people, {trials} trials x {group_size} members")
    for (share, mode), tally in sorted(tallies.items()):
        print(f"  {int(share * 100)}% wrong, {mode:5s}: {tally.line()}")
    for mode in ("alone", "group"):
        for right in (True, False):
            top = sorted(((n, r) for (md, rt, r), n in reasons.items() if md == mode and rt == right), reverse=True)
            print(f"  {mode} {'right' if right else 'wrong'} decisions: " + ", ".join(f"{r} {n}" for n, r in top))
    return tallies


# --------------------------------------------------------------------------- --derive: the threshold data


def _unit(v: FloatArray) -> FloatArray:
    return np.asarray(v / np.linalg.norm(v), dtype=np.float32)


def _quantiles(values: Sequence[float] | FloatArray, qs: Sequence[float]) -> str:
    arr = np.asarray(values, dtype=np.float64)
    return " ".join(f"p{q:g}={np.percentile(arr, q):.3f}" for q in qs)


@dataclass
class _Reference:
    """The main face of every photo of a face set: identity, embedding, detection, crop, decoded image."""

    ids: npt.NDArray[np.str_]
    emb: FloatArray
    dets: list[Detection]
    crops: list[npt.NDArray[np.uint8]]
    images: list[DecodedImage]

    @classmethod
    def load(cls, pipeline: Pipeline, root: Path) -> _Reference:
        ids, embs, dets, crops, images = [], [], [], [], []
        for path, people in face_set(root).values():
            image = pipeline.decode(path.read_bytes())
            faces = pipeline.analyze(image)
            if not faces:
                continue
            f = faces[main_face([x.detection for x in faces], *image.original_size)]
            d = f.detection.scaled(image.scale) if image.scale != 1.0 else f.detection
            ids.append(next(iter(people)))
            embs.append(f.embedding)
            dets.append(f.detection)
            crops.append(align(image.rgb, d.landmarks))
            images.append(image)
        return cls(np.asarray(ids), np.stack(embs), dets, crops, images)

    def own_centroid(self, i: int, emb: FloatArray) -> float:
        """`emb` (photo i, possibly degraded) vs the centroid of the person's other photos."""
        mask = self.ids == self.ids[i]
        mask[i] = False
        return float(emb @ _unit(self.emb[mask].mean(0)))


def _derive_scores(ref: _Reference) -> None:
    e, ids = ref.emb, ref.ids
    people = [p for p in sorted(set(ids)) if (ids == p).sum() >= 4]
    cent = {p: _unit(e[ids == p].mean(0)) for p in people}
    gen, imp, margin = [], [], []
    for i in range(len(e)):
        if ids[i] in cent:
            g = ref.own_centroid(i, e[i])
            o = [float(e[i] @ cent[p]) for p in people if p != ids[i]]
            gen.append(g)
            imp.extend(o)
            margin.append(g - max(o))
    print("face vs own leave-one-out centroid:", _quantiles(gen, (0.1, 0.5, 1, 5, 50)), f"min={min(gen):.3f}")
    print("face vs other person's centroid:   ", _quantiles(imp, (50, 95, 99, 99.5, 99.9)), f"max={max(imp):.3f}")
    for t in (0.25, 0.30, 0.35, 0.40, 0.45):
        below, above = np.mean(np.asarray(gen) < t), np.mean(np.asarray(imp) >= t)
        print(f"  t={t:.2f}: own below {below:.4f}, other at or above {above:.5f}")
    print("own minus closest other centroid:  ", _quantiles(margin, (0.5, 1, 5)))
    iu = np.triu_indices(len(e), 1)
    same = (ids[:, None] == ids[None, :])[iu]
    pairs = (e @ e.T)[iu]
    print(
        "face vs face, same person:         ",
        _quantiles(pairs[same], (5, 10, 50)),
        f"at or above 0.30: {np.mean(pairs[same] >= 0.30):.3f}",
    )
    print("face vs face, different people:    ", _quantiles(pairs[~same], (98, 99, 99.5)))
    # A curation core is smaller than a reference set: centroids of k random other photos of the person.
    rng = random.Random(0)
    large = [p for p in people if (ids == p).sum() >= 9]
    for k in (3, 5, 8):
        own, other = [], []
        for _ in range(20):
            for p in large:
                idx = list(np.flatnonzero(ids == p))
                rng.shuffle(idx)
                centre = _unit(e[idx[1 : 1 + k]].mean(0))
                own.append(float(e[idx[0]] @ centre))
                stranger = rng.choice(list(np.flatnonzero(ids == rng.choice([x for x in large if x != p]))))
                other.append(float(e[stranger] @ centre))
        print(
            f"  centroid of {k}: own {_quantiles(own, (0.1, 1))} min={min(own):.3f} | other "
            f"{_quantiles(other, (99, 99.9))} | own below 0.25: {np.mean(np.asarray(own) < 0.25):.4f}"
        )


def _derive_quality(pipeline: Pipeline, ref: _Reference) -> None:
    sizes = [min(d.width, d.height) for d in ref.dets]
    sharp = [sharpness(c) for c in ref.crops]
    frontal = [frontality(d.landmarks) for d in ref.dets]
    print(
        f"normal faces: size {_quantiles(sizes, (1, 5))} | sharpness {_quantiles(sharp, (0.5, 5))} "
        f"min={min(sharp):.3f} | frontal {_quantiles(frontal, (0.5, 1))} min={min(frontal):.3f}"
    )
    counts = {p: int((ref.ids == p).sum()) for p in set(ref.ids)}
    chosen = [i for i in random.Random(1).sample(range(len(ref.emb)), min(150, len(ref.emb))) if counts[ref.ids[i]] > 3]
    for sigma in (0.0, 1.5, 2.25, 3.0):
        crops = [cv2.GaussianBlur(ref.crops[i], (0, 0), sigma) if sigma else ref.crops[i] for i in chosen]
        emb = pipeline.embed_crops(crops)
        own = [ref.own_centroid(i, emb[j]) for j, i in enumerate(chosen)]
        print(
            f"  blur sigma {sigma}: own-centroid {_quantiles(own, (5, 50))} | "
            f"sharpness {_quantiles([sharpness(c) for c in crops], (50, 99))}"
        )
    # Every face that can be shrunk (80 px or more), from people with enough photos for a centroid.
    big = [i for i in range(len(ref.emb)) if sizes[i] >= 80 and counts[ref.ids[i]] > 3]
    for side in (64, 48, 40, 32, 26, 22):
        own = []
        for i in big:
            image, d = ref.images[i], ref.dets[i]
            # Shrink the photo as decoded so that the face's short side is `side` px, then start over.
            factor = side / min(d.width, d.height) / image.scale
            h, w = image.rgb.shape[:2]
            small = cv2.resize(
                image.rgb, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA
            )
            shrunk = DecodedImage(np.ascontiguousarray(small), image.format, (small.shape[1], small.shape[0]), 1.0)
            cx = (d.box[0] + d.box[2]) / 2 * image.scale * factor
            cy = (d.box[1] + d.box[3]) / 2 * image.scale * factor
            found = [
                f
                for f in pipeline.analyze(shrunk)
                if abs((f.detection.box[0] + f.detection.box[2]) / 2 - cx) < side / 2
                and abs((f.detection.box[1] + f.detection.box[3]) / 2 - cy) < side / 2
            ]
            if found:
                own.append(ref.own_centroid(i, found[0].embedding))
        print(f"  face shrunk to {side} px: own-centroid {_quantiles(own, (5, 50))} (found {len(own)}/{len(big)})")


def derive(pipeline: Pipeline, roots: Sequence[Path], hard: Path) -> None:
    """Reprints the measurements quoted in lookalike.pipeline.quality and curation.Thresholds."""
    refs = {}
    for root in roots:
        ref = refs[root.name] = _Reference.load(pipeline, root)
        print(f"\n== {root.name}: {len(ref.emb)} photos")
        _derive_scores(ref)
        _derive_quality(pipeline, ref)
    identity = {}
    if (hard.parent / "MANIFEST.tsv").is_file():
        with (hard.parent / "MANIFEST.tsv").open() as fh:
            identity = {row["local_path"]: row["identity"] for row in csv.DictReader(fh, delimiter="\t")}
    gallery = refs.get("gallery")
    print(f"\n== {hard}")
    for path in sorted(hard.iterdir()):
        image = pipeline.decode(path.read_bytes())
        for i, f in enumerate(pipeline.analyze(image)[:3]):
            d = f.detection.scaled(image.scale) if image.scale != 1.0 else f.detection
            crop = align(image.rgb, d.landmarks)
            who = identity.get(f"{hard.name}/{path.name}", "")
            line = (
                f"  {path.name} face {i}: size {min(f.detection.width, f.detection.height):6.1f} "
                f"sharpness {sharpness(crop):.3f} frontal {frontality(f.detection.landmarks):.2f}"
            )
            if i == 0 and gallery is not None and (gallery.ids == who).any():
                centre = _unit(gallery.emb[gallery.ids == who].mean(0))
                line += f" | vs {who}'s gallery centroid {float(f.embedding @ centre):.2f}"
            print(line)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=Path, default=FACES, help="root with east_asian/, gallery/, group/, hard/")
    ap.add_argument("--sets", nargs="+", default=["east_asian", "gallery"])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--shares", type=float, nargs="+", default=[0.30, 0.45], help="shares of wrong photos")
    ap.add_argument("--wrong-people", type=int, default=4, help="how many people the wrong photos come from")
    ap.add_argument("--cache", type=Path, help="pickle of analysed photos, reused between runs")
    ap.add_argument("--derive", action="store_true", help="print the data behind the default thresholds")
    ap.add_argument("--verbose", action="store_true", help="list every photo the group pass got wrong")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a threshold")
    args = ap.parse_args(argv)
    if not args.faces.is_dir():
        print(f"no face set at {args.faces}", file=sys.stderr)
        return 2
    pipeline = Pipeline(Settings(data_dir=Path(tempfile.mkdtemp(prefix="curation-eval-")), ort_threads=0))
    pipeline.load()
    if args.derive:
        derive(pipeline, [args.faces / s for s in args.sets], args.faces / "hard")
        return 0
    thresholds = BUFFALO_S
    for item in args.set:
        name, value = item.split("=", 1)
        override: dict[str, Any] = {name: int(value) if name == "min_consensus" else float(value)}
        thresholds = replace(thresholds, **override)
    paths = group_photos(args.faces / "group", args.faces / "MANIFEST.tsv")
    for s in args.sets:
        paths.update(face_set(args.faces / s))
    cached: dict[str, CandidatePhoto] = {}
    if args.cache is not None and args.cache.is_file():
        cached = pickle.loads(args.cache.read_bytes())
    photos = load_photos(pipeline, paths, cached)
    groups = [p for p in photos if p.key.startswith("group/")]
    collages = Collages(pipeline, {k: path for k, (path, _) in paths.items()}, cached)
    ok = True
    for s in args.sets:
        tallies = evaluate(
            s,
            [p for p in photos if p.key.startswith(f"{s}/")],
            groups,
            collages,
            trials=args.trials,
            shares=args.shares,
            wrong_people=args.wrong_people,
            group_size=args.group_size,
            thresholds=thresholds,
            verbose=args.verbose,
        )
        for (share, _), tally in tallies.items():
            # Past half, the wrong photos are the majority: everything is meant to be flagged, not kept.
            ok &= share > 0.5 or (tally.wrong_caught >= 0.9 * tally.wrong and tally.right_ok >= 0.95 * tally.right)
    if args.cache is not None:
        args.cache.write_bytes(pickle.dumps(cached))
    print("\ntargets (>= 90% wrong dropped or flagged, >= 95% right kept):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
