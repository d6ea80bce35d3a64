"""Run the numbered Alembic migrations in store/migrations/versions against a database.

Every server process migrates at start, so processes starting together serialise on a lock first: a PostgreSQL
advisory lock held by the migrating transaction, or for SQLite an flock on a file next to the database. The first
one applies the revisions; the others then find the database at head.
"""

import contextlib
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

_HERE = Path(__file__).parent / "migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_HERE))
    return cfg


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Apply the migrations up to `revision`, one process at a time."""
    from ..engine.owners import LOCK_NS, MIGRATE_KEY, file_lock, sqlite_dir

    cfg = _config()
    directory = sqlite_dir(engine) if engine.dialect.name == "sqlite" else None
    outer = file_lock(directory / "threadline-migrate.lock") if directory else contextlib.nullcontext()
    with outer, engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:ns, :key)"), {"ns": LOCK_NS, "key": MIGRATE_KEY})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current(engine: sa.Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
