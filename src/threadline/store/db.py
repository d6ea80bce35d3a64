"""Engine construction for the two supported databases: SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url

from . import driver


def normalize_url(url: str) -> str:
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


BUSY_TIMEOUT_MS = 30_000


def create_engine(
    url: str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS, pool_size: int = 32, autocheckpoint: bool = True
) -> sa.Engine:
    """The engine for `url`. SQLite only: `busy_timeout_ms` is how long a connection waits for another's write
    lock (0: fail at once with SQLITE_BUSY), `pool_size` its pool size, `autocheckpoint` False: its commits never
    checkpoint the WAL (someone else must)."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, busy_timeout_ms, pool_size, autocheckpoint)
    if parsed.get_backend_name() == "postgresql":
        return _postgres_engine(url)
    raise ValueError(f"Unsupported database URL {url!r}: use sqlite:///path or postgresql://...")


# A pooled PostgreSQL connection idle longer than this is checked (one round trip) before it is handed out.
PING_IDLE_S = 2.0


def _postgres_engine(url: str) -> sa.Engine:
    # Not pool_pre_ping: that checks every checkout, one extra round trip per transaction (3-4 per run). A
    # connection back in the pool moments ago is almost surely alive; one that sat idle (a restarted server, a
    # firewall's idle timeout) is checked and replaced. A connection that dies unnoticed fails its transaction,
    # and that error invalidates the whole pool, so the next transaction reconnects.
    engine = sa.create_engine(url, pool_size=20, max_overflow=40)

    @event.listens_for(engine, "checkin")
    def _checkin(dbapi_conn, record) -> None:  # noqa: ANN001
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn, record, proxy) -> None:  # noqa: ANN001
        since = record.info.get("idle_since")
        if since is not None and time.monotonic() - since > PING_IDLE_S:
            try:
                engine.dialect.do_ping(dbapi_conn)
            except engine.dialect.loaded_dbapi.Error as exc:
                raise sa.exc.DisconnectionError() from exc  # the pool replaces the connection and retries

    return engine


def _sqlite_engine(url: str, busy_timeout_ms: int, pool_size: int, autocheckpoint: bool) -> sa.Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
        pool_size=pool_size,
        max_overflow=pool_size,
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record) -> None:  # noqa: ANN001
        # Let SQLAlchemy's begin/commit drive transactions (the driver's own would defer BEGIN).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys=ON")
        if not autocheckpoint:
            cur.execute("PRAGMA wal_autocheckpoint=0")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        # Writers take the write lock up front: a deferred transaction that later upgrades to a writer can fail
        # with SQLITE_BUSY instead of waiting.
        driver.run(conn, "BEGIN IMMEDIATE" if conn.info.get("write") else "BEGIN")

    return engine
