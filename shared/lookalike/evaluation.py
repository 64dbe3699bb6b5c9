"""`lookalike eval`: the accuracy yardstick, on a folder DIR/<identity>/<photos>, in a temporary index.

Identification protocol: for every identity with at least 2 photos the last photo by file name is a probe and
the rest form the gallery; identities with one photo, and with --impostors N the last N identities by name, stay
out of the gallery and all their photos are impostor probes (right answer: no_match). The threshold is the one
the system calibrates from the gallery alone. Verification protocol (--pairs): LFW's 10 folds.
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
from lookalike.errors import ImageError, InvalidParameter, LookalikeError
from lookalike.index.calibration import calibrate
from lookalike.index.gallery import GalleryIndex, MemberInfo
from lookalike.ingest.local import member_folders, photo_files
from lookalike.pipeline.pipeline import Pipeline
from lookalike.pipeline.types import FloatArray, main_face

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


def identification(
    settings: Settings,
    pipeline: Pipeline,
    directory: Path,
    *,
    impostors: int = 0,
    progress_total: Callable[[int], Progress] | None = None,
) -> dict[str, Any]:
    started = time.perf_counter()
    gallery_paths, probes = split(directory, impostors)
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
    calibration = calibrate(emb, member_ids, k=settings.member_top_k, target_fmr=settings.target_fmr)
    index = GalleryIndex.build(
        version_id=0,
        group="eval",
        model_pack=pipeline.pack_name,
        embeddings=emb,
        member_ids=member_ids,
        photo_ids=np.arange(len(keep), dtype=np.int64),
        members={i: MemberInfo(id=i, slug=n, name=n, group="eval") for i, n in enumerate(names)},
        calibration=calibration,
        member_top_k=settings.member_top_k,
    )

    found = [(p, e) for p, e in zip(probes, probe_emb, strict=True) if e is not None]
    ranked = index.rank(np.stack([e for _, e in found]), top=3) if found else []
    counts: Counter[str] = Counter()
    tops: dict[str, list[str]] = defaultdict(list)
    for (probe, _), scores in zip(found, ranked, strict=True):
        best = scores[0]
        matched = best.similarity >= calibration.threshold
        if probe.is_member:
            counts["top1"] += best.member.slug == probe.identity
            counts["top3"] += probe.identity in [s.member.slug for s in scores]
            counts["tp"] += matched and best.member.slug == probe.identity
        else:
            counts["fp"] += matched
            tops[probe.identity].append(best.member.slug)
    n_member = sum(p.is_member for p in probes)
    n_impostor = len(probes) - n_member
    stable = [Counter(v).most_common(1)[0][1] / len(v) for v in tops.values() if len(v) >= 3]
    return {
        "probes": len(probes),
        "member_probes": n_member,
        "impostor_probes": n_impostor,
        "no_face": len(probes) - len(found),
        "gallery_identities": len(names),
        "gallery_faces": len(keep),
        "gallery_no_face": len(flat) - len(keep),
        "top1": round(counts["top1"] / n_member, 4) if n_member else None,
        "top3": round(counts["top3"] / n_member, 4) if n_member else None,
        "tpir": round(counts["tp"] / n_member, 4) if n_member else None,
        "fpir": round(counts["fp"] / n_impostor, 4) if n_impostor else None,
        "threshold": calibration.threshold,
        "stability": round(float(np.mean(stable)), 4) if stable else None,
        "stability_identities": len(stable),
        "calibration": {"impostor": calibration.impostor, "genuine": calibration.genuine},
        "model_pack": pipeline.pack_name,
        "seconds": round(time.perf_counter() - started, 1),
    }


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
