"""Realistic synthetic face galleries for index benchmarks, modelled on real buffalo_s (ArcFace) embeddings.

Random unit vectors are a poor stand-in for face embeddings: in 512 dimensions they are all nearly orthogonal, so
graph indices (HNSW) and clustering indices (IVF) look much worse (or much better) than they are on faces. Here:

* real embeddings: the main face of every photo of a face set DIR/<set>/<identity>/<photos> (the shared set at
  /work/shared/data/faces: gallery/ 69 people, east_asian/ 21 people), analysed with lookalike's own pipeline and
  cached (bench/results/real_embeddings.npz);
* the real people are split in two: "model" people, whose centroids and within-person residuals the synthetic
  identities are made from, and "held-out" people, whose real photos are the no-match queries (a lookalike query
  resembles nobody in the index closely);
* a synthetic identity's centroid: the real mean face plus a random combination of model centroids' deviations
  from it plus an isotropic perturbation, renormalised; the two scales are fitted so that the pairwise
  similarities of synthetic centroids match those of real different-person centroids;
* a synthetic photo: the centroid turned by a real photo-to-centroid angle towards a residual direction made of
  random real residuals (a photo minus its person's centroid) plus an isotropic part, orthogonal to the centroid;
  the isotropic share is fitted so that same-person photo similarities match the real ones.

`realism_report` prints real vs synthetic percentiles of genuine (same person) and impostor (different people)
similarities, and of the held-out queries' similarity to the gallery's people.
"""

from __future__ import annotations

import hashlib
import itertools
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FACES = Path("/work/shared/data/faces")
RESULTS = Path(__file__).resolve().parent / "results"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
DEFAULT_SETS = ("gallery", "east_asian")

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]


def unit(x: npt.NDArray[np.floating]) -> Floats:
    return np.asarray(x / np.linalg.norm(x, axis=-1, keepdims=True), dtype=np.float32)


# --------------------------------------------------------------------------- real embeddings


@dataclass(frozen=True)
class RealFaces:
    emb: Floats  # (n, 512) unit
    person: Ints  # (n,) index into names
    names: list[str]  # "set/identity"

    def centroids(self) -> Floats:
        return unit(np.stack([self.emb[self.person == p].mean(0) for p in range(len(self.names))]))


def _photo_paths(faces: Path, sets: Sequence[str]) -> list[tuple[str, Path]]:
    out = []
    for s in sets:
        root = faces / s
        for d in sorted(p for p in root.iterdir() if p.is_dir()):
            out += [(f"{s}/{d.name}", p) for p in sorted(d.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    return out


def load_real_faces(faces: Path = FACES, sets: Sequence[str] = DEFAULT_SETS, cache_dir: Path = RESULTS) -> RealFaces:
    """Embeddings of the main face of every photo, from the cache when the photo list is unchanged. Exits with a
    clear message where the face set is absent (it is reference data outside the repository)."""
    missing = [s for s in sets if not (faces / s).is_dir()]
    if missing:
        sys.exit(
            f"The real face set is missing ({', '.join(str(faces / s) for s in missing)}). This benchmark models its "
            "synthetic galleries on real face embeddings and does not fall back to random vectors (HNSW and IVF "
            "behave very differently on those). Point --faces at a folder with gallery/<identity>/*.jpg and "
            "east_asian/<identity>/*.jpg, or copy bench/results/real_embeddings.npz from a machine that has it."
        )
    paths = _photo_paths(faces, sets)
    key = hashlib.sha256("\n".join(f"{who}|{p.relative_to(faces)}|{p.stat().st_size}" for who, p in paths).encode())
    cache = cache_dir / "real_embeddings.npz"
    if cache.is_file():
        data = np.load(cache)
        if str(data["key"]) == key.hexdigest():
            return RealFaces(data["emb"].astype(np.float32), data["person"].astype(np.int64), list(data["names"]))
    from lookalike.config import Settings
    from lookalike.pipeline.pipeline import Pipeline
    from lookalike.pipeline.types import main_face

    pipe = Pipeline(Settings(data_dir=Path(tempfile.mkdtemp(prefix="index-bench-")), ort_threads=0))  # type: ignore[call-arg]
    pipe.load()
    names = sorted({who for who, _ in paths})
    embs, person = [], []
    print(f"embedding {len(paths)} real photos with the lookalike pipeline (cached afterwards) ...", flush=True)
    for i, (who, path) in enumerate(paths):
        image = pipe.decode(path.read_bytes())
        found = pipe.analyze(image)
        if found:
            embs.append(found[main_face([f.detection for f in found], *image.original_size)].embedding)
            person.append(names.index(who))
        if (i + 1) % 100 == 0:
            print(f"  {i + 1}/{len(paths)}", flush=True)
    real = RealFaces(unit(np.stack(embs)), np.asarray(person, np.int64), names)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(cache, key=key.hexdigest(), emb=real.emb, person=real.person, names=np.asarray(names))
    return real


def split_people(real: RealFaces, *, held_out_every: int = 3, min_photos: int = 3) -> tuple[RealFaces, RealFaces]:
    """(model people, held-out people): every `held_out_every`-th person of each set is held out (both sets keep
    their demographic mix); people with fewer than `min_photos` photos go to the held-out side only."""
    counts = np.bincount(real.person, minlength=len(real.names))
    held = []
    per_set: dict[str, int] = {}
    for p, name in enumerate(real.names):
        s = name.split("/", 1)[0]
        per_set[s] = per_set.get(s, 0) + 1
        held.append(counts[p] < min_photos or per_set[s] % held_out_every == 0)

    def subset(keep: list[int]) -> RealFaces:
        mask = np.isin(real.person, keep)
        remap = {p: i for i, p in enumerate(keep)}
        return RealFaces(
            real.emb[mask],
            np.asarray([remap[int(p)] for p in real.person[mask]], np.int64),
            [real.names[p] for p in keep],
        )

    return subset([p for p in range(len(held)) if not held[p]]), subset([p for p in range(len(held)) if held[p]])


# --------------------------------------------------------------------------- the generator


def _pair_sims(x: Floats, rng: np.random.Generator, n: int = 20_000) -> Floats:
    """Similarities of random distinct pairs of rows."""
    i = rng.integers(0, len(x), n)
    j = rng.integers(0, len(x) - 1, n)
    j += j >= i
    return np.asarray(np.einsum("ij,ij->i", x[i], x[j]), np.float32)


def _genuine_sims(emb: Floats, person: Ints) -> Floats:
    out = []
    for p in np.unique(person):
        e = emb[person == p]
        s = e @ e.T
        out.append(s[np.triu_indices(len(e), 1)])
    return np.concatenate(out).astype(np.float32)


def _impostor_sims(emb: Floats, person: Ints, rng: np.random.Generator, n: int = 50_000) -> Floats:
    i = rng.integers(0, len(emb), n)
    j = rng.integers(0, len(emb), n)
    keep = person[i] != person[j]
    return np.asarray(np.einsum("ij,ij->i", emb[i[keep]], emb[j[keep]]), np.float32)


PERCENTILES = (1, 5, 25, 50, 75, 95, 99)


def _pcts(x: npt.NDArray[np.floating]) -> Floats:
    return np.percentile(x, PERCENTILES).astype(np.float32)


@dataclass
class FaceModel:
    """Generates synthetic identities and photos; `fit` matches its similarity statistics to real people."""

    mean: Floats  # mean of real centroids (not unit)
    deviations: Floats  # real centroids minus mean
    residuals: Floats  # real photos minus their centroid's component, unit
    cosines: list[Floats]  # per real person: photo-to-own-centroid cosines (leave-one-out)
    counts: Ints  # real photos per person
    centroid_iso: float = 0.5  # isotropic share of a centroid's deviation
    centroid_spread: float = 1.0  # scale of the deviation from the mean
    centroid_mix: int = 8  # how many real deviations one synthetic centroid combines
    centroid_hood: int = 0  # ... drawn among an anchor person's nearest real people (0: among all)
    centroid_weight_mean: float = 0.0  # mean of the (Gaussian, unit variance) combination weights
    residual_iso: float = 0.5  # isotropic share of a photo's residual
    residual_shared: float = 0.0  # share of a photo's residual common to all photos of the identity
    mix: int = 8  # how many real residuals one synthetic residual combines
    _hoods: Ints | None = None

    @classmethod
    def from_real(cls, real: RealFaces) -> FaceModel:
        cents = real.centroids()
        mean = cents.mean(0)
        residuals, cosines = [], []
        for p in range(len(real.names)):
            e = real.emb[real.person == p]
            own = []
            for i in range(len(e)):
                # Leave-one-out: the photo's own weight would pull a small set's centroid towards it.
                c = unit(np.delete(e, i, axis=0).mean(0))
                cos = float(e[i] @ c)
                own.append(cos)
                residuals.append(e[i] - cos * c)
            cosines.append(np.asarray(own, np.float32))
        counts = np.bincount(real.person).astype(np.int64)
        return cls(mean, cents - mean, unit(np.stack(residuals)), cosines, counts)

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @staticmethod
    def _combo(source: Floats, n: int, mix: int, rng: np.random.Generator) -> Floats:
        """n random combinations of `mix` rows of `source` (Gaussian weights), with the rows' typical norm."""
        picks = rng.integers(0, len(source), (n, mix))
        weights = rng.normal(size=(n, mix)).astype(np.float32) / np.sqrt(mix)
        return np.einsum("nk,nkd->nd", weights, source[picks]).astype(np.float32)

    def centroids(self, n: int, rng: np.random.Generator) -> Floats:
        typical = float(np.linalg.norm(self.deviations, axis=1).mean())
        people = len(self.deviations)
        hood = people if self.centroid_hood <= 0 else min(self.centroid_hood, people)
        if self._hoods is None or self._hoods.shape[1] != hood:
            cents = self.mean + self.deviations
            self._hoods = np.argsort(-(cents @ cents.T), axis=1)[:, :hood]
        anchors = rng.integers(0, people, n)
        picks = self._hoods[anchors[:, None], rng.integers(0, hood, (n, self.centroid_mix))]
        weights = (rng.normal(size=picks.shape) + self.centroid_weight_mean) / np.sqrt(self.centroid_mix)
        structured = np.einsum("nk,nkd->nd", weights.astype(np.float32), self.deviations[picks])
        iso = rng.normal(size=(n, self.dim)).astype(np.float32) * (typical / np.sqrt(self.dim))
        dev = np.sqrt(1 - self.centroid_iso) * structured + np.sqrt(self.centroid_iso) * iso
        return unit(self.mean + self.centroid_spread * dev)

    def identities(self, n: int, rng: np.random.Generator) -> tuple[Floats, Floats, Ints]:
        """n synthetic identities: centroid, shared residual direction, and the real person whose photo-to-centroid
        angles (how consistent the person's photos are) they borrow."""
        return self.centroids(n, rng), self._residual(n, rng), rng.integers(0, len(self.cosines), n)

    def _residual(self, n: int, rng: np.random.Generator) -> Floats:
        structured = unit(self._combo(self.residuals, n, self.mix, rng))
        iso = rng.normal(size=(n, self.dim)).astype(np.float32) / np.sqrt(self.dim)
        return unit(np.sqrt(1 - self.residual_iso) * structured + np.sqrt(self.residual_iso) * iso)

    def photos(self, identities: tuple[Floats, Floats, Ints], ids: Ints, rng: np.random.Generator) -> Floats:
        """One synthetic photo per entry of `ids` (rows of `identities`)."""
        cents, shared, template = identities[0][ids], identities[1][ids], identities[2][ids]
        r = np.sqrt(1 - self.residual_shared) * self._residual(len(ids), rng) + np.sqrt(self.residual_shared) * shared
        r -= np.einsum("nd,nd->n", r, cents)[:, None] * cents
        r = unit(r)
        sizes = np.asarray([len(c) for c in self.cosines])
        table = np.zeros((len(sizes), sizes.max()), np.float32)
        for i, c in enumerate(self.cosines):
            table[i, : len(c)] = c
        cos = np.clip(table[template, (rng.random(len(ids)) * sizes[template]).astype(np.int64)], -1, 1)[:, None]
        return unit(cos * cents + np.sqrt(1 - cos**2) * r)

    def fit(self, real: RealFaces, rng: np.random.Generator) -> None:
        """Grid searches of the scales against the real percentiles: the centroid parameters against different
        people's centroid similarities, then the residual parameters against same-person photo similarities."""
        target_c = _pcts(_pair_sims(real.centroids(), rng))
        # The tails (the people most alike) weigh more: they decide who a query's nearest neighbours are.
        weight = np.asarray([2, 1, 1, 1, 1, 2, 4], np.float32)
        grid = itertools.product(
            (2, 4, 8), (0, 5, 10), (0.0, 0.5, 1.0), (0.0, 0.2, 0.4, 0.6, 0.8), np.linspace(0.6, 2.4, 10)
        )
        best: tuple[float, tuple[int, int, float, float, float]] = (np.inf, (8, 0, 0.0, 0.5, 1.0))
        for params in grid:
            self.centroid_mix, self.centroid_hood, self.centroid_weight_mean, self.centroid_iso, spread = params
            self.centroid_spread = float(spread)
            err = float((weight * np.abs(_pcts(_pair_sims(self.centroids(600, rng), rng)) - target_c)).sum())
            if err < best[0]:
                best = (err, params)
        self.centroid_mix, self.centroid_hood, self.centroid_weight_mean, self.centroid_iso, spread = best[1]
        self.centroid_spread = float(spread)
        target_g = _pcts(_genuine_sims(real.emb, real.person))
        people = self.identities(300, rng)
        ids = np.repeat(np.arange(300), 8)
        best_r: tuple[float, float, float] = (np.inf, 0.0, 0.0)
        for iso in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
            for shared in (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4):
                self.residual_iso, self.residual_shared = iso, shared
                err = float(np.abs(_pcts(_genuine_sims(self.photos(people, ids, rng), ids)) - target_g).sum())
                if err < best_r[0]:
                    best_r = (err, iso, shared)
        _, self.residual_iso, self.residual_shared = best_r

    def gallery(self, n_faces: int, rng: np.random.Generator) -> tuple[Floats, Ints, tuple[Floats, Floats, Ints]]:
        """(embeddings, identity per face, the identities): photos per identity drawn from the real counts."""
        counts: list[int] = []
        while sum(counts) < n_faces:
            counts.append(int(rng.choice(self.counts)))
        counts[-1] -= sum(counts) - n_faces
        if counts[-1] <= 0:
            counts.pop()
        people = self.identities(len(counts), rng)
        ids = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        emb = np.empty((n_faces, self.dim), np.float32)
        for start in range(0, n_faces, 100_000):  # in chunks: the temporaries of 1M rows at once are large
            stop = min(start + 100_000, n_faces)
            emb[start:stop] = self.photos(people, ids[start:stop], rng)
        return emb, ids, people


# --------------------------------------------------------------------------- the realism check


def realism_report(
    model: FaceModel, real_model: RealFaces, held_out: RealFaces, rng: np.random.Generator
) -> dict[str, Any]:
    """Real vs synthetic similarity percentiles; printed, and returned for the JSON report."""
    n_syn = max(len(real_model.names), 300)
    syn_emb, syn_ids, (syn_cents, _, _) = model.gallery(n_syn * 9, rng)
    real_cents = real_model.centroids()
    rows = {
        "centroid impostor (different people's centroids)": (
            _pair_sims(real_cents, rng),
            _pair_sims(syn_cents, rng),
        ),
        "photo genuine (two photos of one person)": (
            _genuine_sims(real_model.emb, real_model.person),
            _genuine_sims(syn_emb, syn_ids),
        ),
        "photo impostor (photos of two people)": (
            _impostor_sims(real_model.emb, real_model.person, rng),
            _impostor_sims(syn_emb, syn_ids, rng),
        ),
        "held-out photo vs a person's centroid": (
            (held_out.emb @ real_cents.T).ravel(),
            (held_out.emb @ syn_cents[: len(real_cents)].T).ravel(),
        ),
    }
    print("\nrealism check: similarity percentiles " + " ".join(f"p{p:<5d}" for p in PERCENTILES))
    report: dict[str, Any] = {}
    for label, (real, syn) in rows.items():
        r, s = _pcts(real), _pcts(syn)
        print(f"  {label}")
        print("    real      " + " ".join(f"{v:6.3f}" for v in r) + f"   (n={len(real)})")
        print("    synthetic " + " ".join(f"{v:6.3f}" for v in s) + f"   (n={len(syn)})")
        report[label] = {"real": [round(float(v), 4) for v in r], "synthetic": [round(float(v), 4) for v in s]}
    # Pairwise similarities only see the effective number of dimensions; the PCA spectrum at the same sample size
    # (as many people and photos as the real set) shows how the variance spreads over them.
    people = model.identities(len(real_model.names), rng)
    syn_small = model.photos(people, np.repeat(np.arange(len(real_model.names)), model.counts), rng)
    spectra = {"real": _spectrum(real_model.emb), "synthetic": _spectrum(syn_small)}
    print("  PCA spectrum of photos, cumulative variance in the top 10 / 50 / 100 components, participation ratio:")
    for name, (cum, ratio) in spectra.items():
        print(f"    {name:<9} {cum[0]:.3f} / {cum[1]:.3f} / {cum[2]:.3f}, {ratio:.1f}   (n={len(real_model.emb)})")
    print(
        f"  fitted: centroids mix {model.centroid_mix} real deviations (among an anchor's "
        f"{model.centroid_hood or 'all'} nearest, weights mean {model.centroid_weight_mean}), isotropic share "
        f"{model.centroid_iso}, spread {model.centroid_spread:.2f}; residuals isotropic share {model.residual_iso}, "
        f"shared per identity {model.residual_shared}; {len(real_model.names)} model people, "
        f"{len(held_out.names)} held-out people ({len(held_out.emb)} query photos)"
    )
    return {
        "percentiles": list(PERCENTILES),
        "similarities": report,
        "spectrum_top10_50_100_and_participation_ratio": {k: [*v[0], v[1]] for k, v in spectra.items()},
    }


def _spectrum(x: Floats) -> tuple[list[float], float]:
    ev = np.linalg.svd(x - x.mean(0), compute_uv=False) ** 2
    ev /= ev.sum()
    cum = np.cumsum(ev)
    return [round(float(cum[i - 1]), 4) for i in (10, 50, 100)], round(float(1 / (ev**2).sum()), 1)
