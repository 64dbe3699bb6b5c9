"""Storage on both databases: Alembic migrations up, down and up again on SQLite and on the real PostgreSQL,
then the whole ingest -> index -> diagnose path (jobs included) running on PostgreSQL.

PostgreSQL tests work in a schema of their own (search_path set on the connection), created for the test and
dropped afterwards, so repeated or concurrent runs never see each other's tables.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import make_url

from lookalike.config import Settings
from lookalike.db import repository as repo
from lookalike.db.engine import get_engine, session_scope
from lookalike.db.migrate import HEAD, alembic_config, current_revision, downgrade, upgrade
from lookalike.db.models import Base
from lookalike.errors import NoFace, NotFound
from lookalike.index.builder import reindex_group
from lookalike.index.registry import IndexRegistry
from lookalike.ingest.local import ingest_folder
from lookalike.jobs.functions import purge_finished_jobs
from lookalike.pipeline.pipeline import Pipeline
from lookalike.runtime import build_runtime

REPO = Path(__file__).resolve().parents[1]
FACES = REPO / "tests" / "data" / "faces"
DEMO = REPO / "demo" / "gallery"
DEMO_GROUP = "sakamichi"
MEMBERS = sorted(p.name for p in DEMO.iterdir() if p.is_dir())
N_DEMO_PHOTOS = sum(len(list((DEMO / m).glob("*.jpg"))) for m in MEMBERS)
TABLES = {"groups", "members", "photos", "faces", "index_versions", "jobs"}
INDEXES = {
    "faces": {"ix_faces_photo_id", "ix_faces_model_pack"},
    "photos": {"ix_photos_member_id"},
    "members": {"ix_members_group_id"},
    "index_versions": {"ix_index_versions_group_id"},
    "jobs": {"ix_jobs_status"},
}


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("unused")).get_current_head()
    assert head is not None
    return head


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def check_at_head(url: str) -> None:
    """Every table, index and unique constraint is there, the schema matches the models, alembic says head."""
    engine = create_engine(url)
    try:
        insp = inspect(engine)
        assert TABLES | {"alembic_version"} <= set(insp.get_table_names())
        for table, expected in INDEXES.items():
            assert expected <= {ix["name"] for ix in insp.get_indexes(table)}, table
        uniques = {t: {u["name"] for u in insp.get_unique_constraints(t)} for t in ("groups", "members", "photos")}
        assert "uq_members_group_slug" in uniques["members"]
        assert "uq_photos_member_sha256" in uniques["photos"]
        assert "uq_groups_slug" in uniques["groups"]
        fks = {fk["referred_table"] for fk in insp.get_foreign_keys("faces")}
        assert fks == {"photos"}
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head_revision()]
            # The migrations produce exactly what the models declare: nothing for autogenerate to add.
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
            assert diff == [], diff
    finally:
        engine.dispose()


def round_trip(url: str) -> None:
    upgrade(url)
    check_at_head(url)
    upgrade(url)  # at head already: a no-op, not an error
    check_at_head(url)
    downgrade(url, "base")
    assert tables(url) & TABLES == set()
    upgrade(url)
    check_at_head(url)


# --------------------------------------------------------------------------- SQLite


def test_the_pinned_head_is_alembics_head(tmp_path: Path) -> None:
    """upgrade() skips Alembic for a database at migrate.HEAD: a new migration must move HEAD with it."""
    from alembic.script import ScriptDirectory

    url = Settings(data_dir=tmp_path / "data", database_url="").sqlalchemy_url
    assert ScriptDirectory.from_config(alembic_config(url)).get_heads() == [HEAD]
    assert current_revision(url) is None  # no file yet, and asking does not create one
    assert not (tmp_path / "data" / "lookalike.db").exists()
    upgrade(url, "0003")
    assert current_revision(url) == "0003"
    upgrade(url)  # one behind HEAD: Alembic runs
    assert current_revision(url) == HEAD
    check_at_head(url)
    get_engine(url).dispose()


def test_sqlite_migrations_round_trip(tmp_path: Path) -> None:
    url = Settings(data_dir=tmp_path / "data", database_url="").sqlalchemy_url
    assert url.startswith("sqlite:///")
    round_trip(url)
    downgrade(url, "base")
    assert tables(url) & TABLES == set()
    get_engine(url).dispose()


def test_sqlite_cascades_deletes(demo_copy: Path) -> None:
    """Foreign keys are on in SQLite (the engine sets the pragma): deleting a group removes everything under it."""
    url = Settings(data_dir=demo_copy, database_url="").sqlalchemy_url
    with session_scope(url) as session:
        group = repo.get_group(session, DEMO_GROUP)
        assert group is not None
        assert len(repo.list_members(session, DEMO_GROUP)) == len(MEMBERS)
        session.execute(text("DELETE FROM groups WHERE slug = :slug"), {"slug": DEMO_GROUP})
    with session_scope(url) as session:
        for table in ("members", "photos", "faces", "index_versions"):
            assert session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 0, table
    get_engine(url).dispose()


# --------------------------------------------------------------------------- PostgreSQL


def _sqlalchemy_url(url: str) -> str:
    return Settings(database_url=url).sqlalchemy_url


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    """A SQLAlchemy URL to the real PostgreSQL whose search_path is a fresh schema, dropped afterwards."""
    schema = f"lookalike_test_{uuid.uuid4().hex[:12]}"
    base = make_url(_sqlalchemy_url(postgres_url))
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        get_engine(url).dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.mark.postgres
def test_postgres_schema_is_isolated(pg_url: str) -> None:
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_schema()")).scalar_one().startswith("lookalike_test_")
            assert conn.dialect.name == "postgresql"
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_migrations_round_trip(pg_url: str) -> None:
    downgrade(pg_url, "base")  # an empty schema: nothing to undo, and no error either
    round_trip(pg_url)
    downgrade(pg_url, "base")
    assert tables(pg_url) & TABLES == set()


@pytest.mark.postgres
def test_postgres_runs_ingest_index_and_diagnose(pg_url: str, tmp_path: Path, demo_data_dir: Path) -> None:
    settings = Settings(database_url=pg_url, data_dir=tmp_path / "data", workers=2)
    assert settings.sqlalchemy_url == pg_url
    downgrade(pg_url, "base")
    upgrade(pg_url)
    try:
        _ingest_index_diagnose(settings, demo_data_dir)
    finally:
        downgrade(pg_url, "base")
    assert tables(pg_url) & TABLES == set()


def _ingest_index_diagnose(settings: Settings, sqlite_data_dir: Path) -> None:
    url = settings.sqlalchemy_url
    pipeline = Pipeline(settings)

    # Ingest: every demo photo once; a second pass finds them all by digest.
    report = ingest_folder(settings, pipeline, DEMO, group_slug=DEMO_GROUP)
    assert (report.members, report.photos_added, report.duplicates) == (len(MEMBERS), N_DEMO_PHOTOS, 0)
    assert report.no_face == [] and report.unreadable == []
    again = ingest_folder(settings, pipeline, DEMO, group_slug=DEMO_GROUP)
    assert (again.photos_added, again.duplicates) == (0, N_DEMO_PHOTOS)

    with session_scope(url) as session:
        members = repo.list_members(session, DEMO_GROUP)
        assert [m.slug for m in members] == MEMBERS
        assert all(m.photo_count == 5 for m in members)
        hori = next(m for m in members if m.slug == "hori_miona")
        assert hori.name == "Miona Hori"
        assert hori.meta["name_ja"] == "堀未央奈"  # JSON and unicode survive PostgreSQL
        assert repo.get_member(session, hori.id) == hori
        assert len(repo.member_photos(session, hori.id)) == 5

    # Index: two builds, only the newest is active.
    first = reindex_group(settings, DEMO_GROUP, model_pack=pipeline.pack_name)
    built = reindex_group(settings, DEMO_GROUP, model_pack=pipeline.pack_name)
    assert built.version_id > first.version_id
    assert (built.n_faces, built.n_members) == (N_DEMO_PHOTOS, len(MEMBERS))
    with session_scope(url) as session:
        active = repo.active_versions(session, pipeline.pack_name)
        assert list(active) == [DEMO_GROUP]
        assert active[DEMO_GROUP].id == built.version_id
        n_versions = session.execute(select(repo.IndexVersion.id)).all()
        assert len(n_versions) == 2
    with pytest.raises(NotFound):
        reindex_group(settings, "nosuchgroup", model_pack=pipeline.pack_name)

    # The same photos give the same embeddings and the same threshold as the SQLite demo gallery.
    sqlite_url = Settings(data_dir=sqlite_data_dir, database_url="").sqlalchemy_url
    with session_scope(url) as pg_session, session_scope(sqlite_url) as lite_session:
        pg_group, lite_group = repo.get_group(pg_session, DEMO_GROUP), repo.get_group(lite_session, DEMO_GROUP)
        assert pg_group is not None and lite_group is not None
        pg_faces = repo.gallery_faces(pg_session, pg_group, pipeline.pack_name)
        lite_faces = repo.gallery_faces(lite_session, lite_group, pipeline.pack_name)
        assert pg_faces.embeddings.shape == lite_faces.embeddings.shape == (N_DEMO_PHOTOS, 512)
        np.testing.assert_allclose(pg_faces.embeddings, lite_faces.embeddings, atol=1e-4)
        pg_threshold = repo.active_version_rows(pg_session, pipeline.pack_name)[pg_group.id].threshold
        lite_threshold = repo.active_version_rows(lite_session, pipeline.pack_name)[lite_group.id].threshold
        assert pg_threshold == pytest.approx(lite_threshold, abs=1e-3)

    # Diagnose through the registry that serves the PostgreSQL index versions.
    registry = IndexRegistry(settings, pipeline.pack_name)
    for member in MEMBERS:
        result = pipeline.diagnose((FACES / "probes" / member / "11.jpg").read_bytes(), galleries=registry.galleries())
        assert result.index_versions == {DEMO_GROUP: built.version_id}
        [face] = result.faces
        assert face.verdict == "same_person", (member, face)
        assert face.matches[0].slug == member
    stranger = pipeline.diagnose(
        (FACES / "strangers" / "meryl_streep" / "06.jpg").read_bytes(), galleries=registry.galleries(DEMO_GROUP)
    )
    assert [f.verdict for f in stranger.faces] == ["no_match"]

    # The job path the gateway uses: job rows written, finished and purged in PostgreSQL.
    _jobs(settings)


def _jobs(settings: Settings) -> None:
    runtime = build_runtime(settings)

    async def run() -> None:
        try:
            runner = runtime.runner
            job = await runner.submit(
                "diagnose", {"group": DEMO_GROUP}, data=(FACES / "probes" / "saito_asuka" / "12.jpg").read_bytes()
            )
            state = await runner.wait(job, 60)
            assert state is not None and state.status == "done" and state.result is not None
            assert state.result["faces"][0]["matches"][0]["slug"] == "saito_asuka"
            job = await runner.submit("diagnose", {"group": None}, data=(FACES / "noface" / "04.jpg").read_bytes())
            state = await runner.wait(job, 60)
            assert state is not None and state.status == "failed" and state.error is not None
            assert state.error["code"] == NoFace.code and state.error["status"] == 422
        finally:
            await runtime.runner.close()

    asyncio.run(run())
    with session_scope(settings.sqlalchemy_url) as session:
        jobs = {j.status: j for j in session.scalars(select(repo.Job))}
        assert set(jobs) == {"done", "failed"}
        done, failed = jobs["done"], jobs["failed"]
        assert done.kind == failed.kind == "diagnose"
        assert done.params == {"group": DEMO_GROUP} and failed.params == {"group": None}
        assert done.attempts == failed.attempts == 1
        assert done.result is not None and done.result["faces"][0]["matches"][0]["slug"] == "saito_asuka"
        assert "embedding" not in str(done.result)  # results keep scores, never the uploader's embedding
        assert failed.error is not None and failed.error["code"] == "no_face"
        assert done.started_at is not None and done.finished_at is not None
        assert done.started_at <= done.finished_at
        assert done.finished_at.tzinfo is not None
    # Results younger than the lifetime stay; with a negative lifetime every finished job is forgotten.
    assert purge_finished_jobs(settings) == 0
    assert purge_finished_jobs(settings.model_copy(update={"result_ttl_s": -1})) == 2
    with session_scope(settings.sqlalchemy_url) as session:
        assert session.execute(select(repo.Job.id)).all() == []
