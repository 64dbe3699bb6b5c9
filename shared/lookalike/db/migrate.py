"""Run Alembic migrations from code (the CLI, the service start-up and the tests use this)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:
    from alembic.config import Config

# The repository root holds alembic.ini and migrations/ (the package is installed from it in editable mode
# and the Docker images copy the whole tree).
ROOT = Path(__file__).resolve().parents[3]


# The newest revision under migrations/versions (tests/test_db.py fails when it is not Alembic's head). Every process
# start migrates; one already at HEAD skips Alembic, whose import and no-op run cost about 0.2 s a process.
HEAD = "0004"


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["url"] = url
    return config


# Advisory lock key of migrations on Postgres (any constant shared by every process).
MIGRATION_LOCK = 0x6C6F6F6B616C696B  # "lookalik"


@contextmanager
def migration_lock(url: str) -> Iterator[None]:
    """One migrating process at a time: gateway processes (`serve --processes N`, replicas) start together, and
    two Alembic runs on one database race to create the same tables."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
                    conn.commit()
        finally:
            engine.dispose()
        return
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        yield
        return
    lock = Path(database).with_name(Path(database).name + ".migrate.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def current_revision(url: str) -> str | None:
    """The database's Alembic revision; None for a database without one (new, or older than Alembic)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        return None  # connecting would create the file
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()
    except DBAPIError:
        return None  # no alembic_version table yet
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    if revision in ("head", HEAD) and current_revision(url) == HEAD:
        return
    from alembic import command

    with migration_lock(url):
        command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)
