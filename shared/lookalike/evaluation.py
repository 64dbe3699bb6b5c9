"""`lookalike eval`: the accuracy yardstick, on a folder DIR/<identity>/<photos>, in a temporary index.

Identification protocol: for every identity with at least 2 photos the last photo by file name is a probe and
the rest form the gallery; identities with one photo, and with --impostors N the last N identities by name, stay
out of the gallery and all their photos are impostor probes; with --strangers DIR2, every photo of
DIR2/<identity>/ is a stranger probe too. The thresholds are the ones the system calibrates from the gallery
alone, and suspected label errors stay out of the gallery as they do in the service. Member probes should come
back as their member (same_person); strangers measure how often the answers say same_person (the delivered false
match rate) or lookalike, and how steady and fair their top members are (lookalike/stability.py).
Verification protocol (--pairs): LFW's 10 folds.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.config import Settings
from lookalike.errors import DifferentPeople, ImageError, InvalidParameter, LookalikeError
from lookalike.index.calibration import calibrate
from lookalike.index.crowd import EMPTY, cached_crowd
from lookalike.index.gallery import GalleryIndex, MemberInfo
from lookalike.ingest.local import member_folders, photo_files
from lookalike.pipeline.pipeline import Pipeline
from lookalike.pipeline.types import FloatArray, main_face
from lookalike.stability import count_bias, hub_share, pair_agreement, pair_agreement_2photo

Progress = Callable[[int], None]


def embed_main_faces(
    pipeline: Pipeline, paths: Sequence[Path], *, workers: int, progress: Progress | None = None
) -> list[FloatArray | None]:
    """The embedding of each photo's main face, or None where no face (or no picture) was found."""

    def one(path: Path) -> FloatArray | None:
        try:
            image, faces = pipeline.read(path.read_bytes())
        except ImageError:
            return None
        if not faces:
            return None
        return faces[main_face([f.detection for f in faces], *image.original_size)].embedding

    pipeline.load()
    out: list[FloatArray | None] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for emb in pool.map(one, paths):
            out.append(emb)
            if progress is not None:
                progress(1)
    return out


@dataclass(frozen=True)
class Probe:
    path: Path
    identity: str
    is_member: bool
    # Where it comes from: "gallery" (member probes and impostors of DIR) or a --strangers folder's name.
    source: str = "gallery"


def split(directory: Path, impostors: int) -> tuple[dict[str, list[Path]], list[Probe]]:
    folders = [f for f in member_folders(directory) if photo_files(f)]
    held_out = {f.name for f in folders[len(folders) - impostors :]} if impostors else set()
    gallery: dict[str, list[Path]] = {}
    probes: list[Probe] = []
    for folder in folders:
        photos = photo_files(folder)
        if folder.name in held_out or len(photos) < 2:
            probes.extend(Probe(p, folder.name, is_member=False) for p in photos)
        else:
            gallery[folder.name] = photos[:-1]
            probes.append(Probe(photos[-1], folder.name, is_member=True))
    return gallery, probes


def stranger_probes(directories: Sequence[Path]) -> list[Probe]:
    """Every photo of DIR2/<identity>/ is a stranger probe, named by its folder (DIR2's name, made unique)."""
    probes: list[Probe] = []
    names: set[str] = set()
    for directory in directories:
        name = directory.name
        while name in names or name == "gallery":
            name += "'"
        names.add(name)
        for folder in member_folders(directory):
            probes.extend(Probe(p, folder.name, is_member=False, source=name) for p in photo_files(folder))
    return probes


def _rate(hits: Sequence[bool]) -> float | None:
    return round(sum(hits) / len(hits), 4) if hits else None


def _verdict_rates(verdicts: Sequence[str]) -> dict[str, float | None]:
    """Shares given at least that verdict (same_person counts as a lookalike too)."""
    return {
        "same_person_rate": _rate([v == "same_person" for v in verdicts]),
        "lookalike_rate": _rate([v != "no_match" for v in verdicts]),
    }


def identification(
    settings: Settings,
    pipeline: Pipeline,
    directory: Path,
    *,
    impostors: int = 0,
    strangers: Sequence[Path] = (),
    progress_total: Callable[[int], Progress] | None = None,
) -> dict[str, Any]:
    started = time.perf_counter()
    gallery_paths, probes = split(directory, impostors)
    probes += stranger_probes(strangers)
    names = sorted(gallery_paths)
    flat = [(i, p) for i, n in enumerate(names) for p in gallery_paths[n]]
    paths = [p for _, p in flat] + [p.path for p in probes]
    progress = progress_total(len(paths)) if progress_total else None
    embeddings = embed_main_faces(pipeline, paths, workers=settings.workers, progress=progress)
    gallery_emb = embeddings[: len(flat)]
    probe_emb = embeddings[len(flat) :]

    keep = [k for k, e in enumerate(gallery_emb) if e is not None]
    if not keep:
        raise LookalikeError(
            f"no gallery face in {directory}: eval needs DIR/<identity>/<photos>, 2 or more photos per identity",
            code="empty_gallery",
            status=422,
        )
    emb = np.stack([gallery_emb[k] for k in keep]).astype(np.float32)  # type: ignore[misc]
    member_ids = np.array([flat[k][0] for k in keep], dtype=np.int64)
    crowd = cached_crowd(settings.model_root / "crowd", pipeline.pack_name, pipeline.embed_crops)
    calibrated = calibrate(
        emb,
        member_ids,
        k=settings.member_top_k,
        target_fmr=settings.target_fmr,
        lookalike_quantile=settings.lookalike_quantile,
        crowd=crowd or EMPTY,
    )
    calibration = calibrated.calibration
    # As the service does: suspected label errors stay out of the index (they wait for a reviewer there).
    indexed = np.setdiff1d(np.arange(len(emb)), [s.face for s in calibrated.suspects])
    index = GalleryIndex.build(
        version_id=0,
        group="eval",
        model_pack=pipeline.pack_name,
        embeddings=emb[indexed],
        member_ids=member_ids[indexed],
        photo_ids=indexed.astype(np.int64),
        members={i: MemberInfo(id=i, slug=n, name=n, group="eval") for i, n in enumerate(names)},
        calibration=calibration,
        member_top_k=settings.member_top_k,
        crowd=calibrated.crowd,
    )

    def rank_top(queries: FloatArray) -> list[list[int]]:
        return [[s.member.id for s in scores] for scores in index.rank(queries, top=3)]

    found = [(p, e) for p, e in zip(probes, probe_emb, strict=True) if e is not None]
    ranked = index.rank(np.stack([e for _, e in found]), top=3) if found else []
    verdicts = [calibration.verdict(r[0].similarity, r[0].lookalike) if r else "no_match" for r in ranked]
    member_rows = [(p, r, v) for (p, _), r, v in zip(found, ranked, verdicts, strict=True) if p.is_member]
    right = [bool(r) and r[0].member.slug == p.identity for p, r, _ in member_rows]
    stranger_rows = [(p, e, r, v) for (p, e), r, v in zip(found, ranked, verdicts, strict=True) if not p.is_member]
    impostor_verdicts = [v for p, _, _, v in stranger_rows if p.source == "gallery"]
    n_member = sum(p.is_member for p in probes)
    n_impostor = sum(not p.is_member and p.source == "gallery" for p in probes)

    def member_rate(hits: Sequence[bool]) -> float | None:
        return round(sum(hits) / n_member, 4) if n_member else None

    tpir_same = member_rate([ok and v == "same_person" for ok, (_, _, v) in zip(right, member_rows, strict=True)])
    stranger_sets: dict[str, Any] = {}
    for source in dict.fromkeys(p.source for p in probes if p.source != "gallery"):
        rows = [(p, v) for p, _, _, v in stranger_rows if p.source == source]
        by_identity: dict[str, dict[str, int]] = defaultdict(lambda: {"photos": 0, "lookalike": 0, "same_person": 0})
        for p, v in rows:
            counts = by_identity[p.identity]
            counts["photos"] += 1
            counts["lookalike"] += v != "no_match"
            counts["same_person"] += v == "same_person"
        stranger_sets[source] = {
            "photos": sum(p.source == source for p in probes),
            "identities": len(by_identity),
            "no_face": sum(p.source == source for p in probes) - len(rows),
            **_verdict_rates([v for _, v in rows]),
            "by_identity": dict(sorted(by_identity.items())),
        }
    dir_strangers = [v for p, _, _, v in stranger_rows if p.source != "gallery"]

    tops = [[s.member.id for s in r] for _, _, r, _ in stranger_rows]
    idents = [f"{p.source}/{p.identity}" for p, _, _, _ in stranger_rows]
    stranger_emb: FloatArray = (
        np.stack([e for _, e, _, _ in stranger_rows]) if stranger_rows else np.zeros((0, emb.shape[1]), np.float32)
    )
    agreement, agreement_top3 = pair_agreement(tops, idents)

    def combine(photos: FloatArray) -> FloatArray | None:
        try:
            return pipeline.person_query(photos)
        except DifferentPeople:
            return None

    agreement_2photo, refused = pair_agreement_2photo(stranger_emb, idents, combine=combine, rank_top=rank_top)
    hub, hub_uniform = hub_share(tops, index.member_ids)
    photo_counts = Counter(int(m) for m in index.member_ids)
    stable = [
        Counter(t[0] for t in group).most_common(1)[0][1] / len(group)
        for group in _by_identity(tops, idents).values()
        if len(group) >= 3
    ]
    return {
        "probes": len(probes),
        "member_probes": n_member,
        "impostor_probes": n_impostor,
        "stranger_probes": len(probes) - n_member - n_impostor,
        "no_face": len(probes) - len(found),
        "gallery_identities": len(names),
        "gallery_faces": len(keep),
        "gallery_no_face": len(flat) - len(keep),
        "top1": member_rate(right),
        "top3": member_rate([any(s.member.slug == p.identity for s in r) for p, r, _ in member_rows]),
        "tpir": tpir_same,
        "tpir_same_person": tpir_same,
        "tpir_lookalike": member_rate(
            [ok and v != "no_match" for ok, (_, _, v) in zip(right, member_rows, strict=True)]
        ),
        "fpir": _rate([v == "same_person" for v in impostor_verdicts]),
        "stranger_fpir": _rate([v == "same_person" for v in dir_strangers]),
        "target_fmr": settings.target_fmr,
        **_verdict_rates([v for _, _, _, v in stranger_rows]),
        "strangers": stranger_sets,
        "threshold": calibration.threshold,
        "threshold_interval": calibration.threshold_interval,
        "impostor_scores": calibration.n_impostor,
        "lookalike_threshold": calibration.lookalike_threshold,
        "lookalike_interval": calibration.lookalike_interval,
        "lookalike_quantile": calibration.lookalike_quantile,
        "suspect_pairs": [
            {
                "photo": str(flat[keep[s.face]][1]),
                "member": names[s.member],
                "other_photo": str(flat[keep[s.other_face]][1]),
                "other_member": names[s.other_member],
                "similarity": s.similarity,
                "score": s.score,
                "own": s.own,
                "kind": s.kind,
            }
            for s in calibrated.suspects
        ],
        "pair_agreement": agreement,
        "pair_agreement_top3": agreement_top3,
        "pair_agreement_2photo": agreement_2photo,
        "pair_2photo_refused": refused,
        "hub_share": hub,
        "hub_share_uniform": hub_uniform,
        "count_bias": count_bias(tops, index.member_ids, dict(photo_counts)),
        "stability": round(float(np.mean(stable)), 4) if stable else None,
        "stability_identities": len(stable),
        "calibration": {"impostor": calibration.impostor, "genuine": calibration.genuine},
        "crowd_people": calibration.crowd.get("people"),
        "model_pack": pipeline.pack_name,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _by_identity(tops: Sequence[list[int]], identities: Sequence[str]) -> dict[str, list[list[int]]]:
    out: dict[str, list[list[int]]] = defaultdict(list)
    for top, who in zip(tops, identities, strict=True):
        if top:
            out[who].append(top)
    return out


def read_pairs(pairs_file: Path, directory: Path) -> tuple[int, list[tuple[Path, Path, bool]]]:
    """LFW pairs (paths are not checked here); raises InvalidParameter for a malformed file."""
    lines = [ln.split() for ln in pairs_file.read_text().splitlines() if ln.strip()]

    def photo(name: str, number: str) -> Path:
        return directory / name / f"{name}_{int(number):04d}.jpg"

    pairs: list[tuple[Path, Path, bool]] = []
    try:
        folds = int(lines[0][0])
        for parts in lines[1:]:
            if len(parts) == 3:
                pairs.append((photo(parts[0], parts[1]), photo(parts[0], parts[2]), True))
            elif len(parts) == 4:
                pairs.append((photo(parts[0], parts[1]), photo(parts[2], parts[3]), False))
            else:
                raise ValueError(f"bad pairs line: {' '.join(parts)}")
    except (IndexError, ValueError) as exc:
        raise InvalidParameter(f"{pairs_file.name} is not an LFW pairs file ({exc})") from None
    if folds < 2 or len(pairs) < folds:
        raise InvalidParameter(f"{pairs_file.name}: {len(pairs)} pairs cannot make {folds} folds (2 or more)")
    return folds, pairs


def pair_similarity(a: FloatArray | None, b: FloatArray | None) -> float:
    """Cosine of two unit embeddings; -1 (surely different) when either photo shows no face."""
    return float(a @ b) if a is not None and b is not None else -1.0


def best_threshold(sims: FloatArray, same: np.ndarray[Any, np.dtype[np.bool_]]) -> float:
    candidates = np.unique(sims)
    mids = np.r_[candidates[0] - 1e-3, (candidates[1:] + candidates[:-1]) / 2, candidates[-1] + 1e-3]
    accuracy = [np.mean((sims >= t) == same) for t in mids]
    return float(mids[int(np.argmax(accuracy))])


def verification(
    settings: Settings,
    pipeline: Pipeline,
    directory: Path,
    pairs_file: Path,
    *,
    progress_total: Callable[[int], Progress] | None = None,
) -> dict[str, Any]:
    started = time.perf_counter()
    folds, pairs = read_pairs(pairs_file, directory)
    paths = sorted({p for a, b, _ in pairs for p in (a, b)})
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise InvalidParameter(f"{len(missing)} photos named in {pairs_file.name} are missing, e.g. {missing[0]}")
    progress = progress_total(len(paths)) if progress_total else None
    emb = dict(zip(paths, embed_main_faces(pipeline, paths, workers=settings.workers, progress=progress), strict=True))
    sims = np.array([pair_similarity(emb[a], emb[b]) for a, b, _ in pairs], dtype=np.float32)
    same = np.array([s for _, _, s in pairs], dtype=bool)
    fold_of = np.arange(len(pairs)) * folds // len(pairs)
    accuracies, thresholds = [], []
    for f in range(folds):
        test = fold_of == f
        t = best_threshold(sims[~test], same[~test])
        thresholds.append(t)
        accuracies.append(float(np.mean((sims[test] >= t) == same[test])))
    return {
        "pairs": len(pairs),
        "folds": folds,
        "no_face": sum(e is None for e in emb.values()),
        "accuracy": round(float(np.mean(accuracies)), 4),
        "std": round(float(np.std(accuracies)), 4),
        "threshold": round(float(np.mean(thresholds)), 4),
        "model_pack": pipeline.pack_name,
        "seconds": round(time.perf_counter() - started, 1),
    }
