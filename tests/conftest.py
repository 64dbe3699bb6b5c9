"""Shared fixtures: real models, real SQLite in a temp folder, the real Postgres where the test asks for it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from lookalike.cli import serial_settings
from lookalike.config import Settings
from lookalike.index.crowd import Crowd
from lookalike.pipeline.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "faces"
DEMO = REPO / "demo" / "gallery"
DEMO_GROUP = "sakamichi"
pytest_plugins = ["workers"]  # how the tests share two xdist workers

POSTGRES_URL = os.environ.get("LOOKALIKE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    return Settings(data_dir=data_dir, **overrides)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """One loaded buffalo_s pipeline for the whole run (models load once per process, as in the service), with the
    threads a lone photo gets in the service and the CLI (the CPU count): the suite analyses one photo at a time,
    and its faces and embeddings are those of one thread (tests/pipeline/test_lone_threads.py)."""
    pipe = Pipeline(serial_settings(make_settings(tmp_path_factory.mktemp("pipeline"))))
    pipe.load()
    return pipe


@pytest.fixture(scope="session")
def crowd(pipeline: Pipeline) -> Crowd:
    """The reference crowd embedded by the session's pipeline (340 faces: embedded once per run)."""
    from lookalike.index.crowd import embed_crowd

    return embed_crowd(pipeline.embed_crops)


@pytest.fixture(scope="session")
def demo_data_dir(tmp_path_factory: pytest.TempPathFactory, pipeline: Pipeline) -> Path:
    """A data dir with the demo gallery ingested and indexed. Tests that change data must copy it."""
    from lookalike.db.migrate import upgrade
    from lookalike.index.builder import reindex_group
    from lookalike.ingest.local import ingest_folder

    data_dir = tmp_path_factory.mktemp("demo-data")
    settings = make_settings(data_dir)
    upgrade(settings.sqlalchemy_url)
    ingest_folder(settings, Pipeline(settings), DEMO, group_slug=DEMO_GROUP)
    reindex_group(settings, DEMO_GROUP, model_pack="buffalo_s", embed=pipeline.embed_crops)
    return data_dir


@pytest.fixture
def demo_copy(demo_data_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the demo data dir, for tests that change the gallery."""
    target = tmp_path / "data"
    shutil.copytree(demo_data_dir, target)
    return target


def postgres_available() -> bool:
    import psycopg

    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The real Postgres. Skips where there is none, except under CI=true, where it must be there."""
    if not postgres_available():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI requires PostgreSQL at {POSTGRES_URL}")
        pytest.skip(f"no PostgreSQL at {POSTGRES_URL} (set LOOKALIKE_TEST_POSTGRES_URL)")
    yield POSTGRES_URL
