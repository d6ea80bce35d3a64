"""Hot statements run as SQL text on the driver's connection, inside the caller's SQLAlchemy transaction.

Building, cache-keying and compiling a SQLAlchemy Core statement costs about 150 µs of CPU per execution (35 µs
even for a prebuilt one); the same statement on the driver's cursor costs about 5 µs. The run path and the
message endpoints execute a few dozen of them per request, so the store's repositories run those as text here.
The SQL is written once with `?` placeholders (sqlite3's style) and rewritten to `%s` for psycopg. Driver errors
are raised wrapped as SQLAlchemy's, exactly as `Connection.execute` raises them (the disk-full and error mapping
in api/errors.py and engine/neutral.py depend on that), and a lost PostgreSQL connection is invalidated.
"""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa

Params = tuple[Any, ...] | list[Any]


@functools.lru_cache(maxsize=512)
def _format_style(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


def execute(conn: sa.Connection, sql: str, params: Params = ()) -> Any:
    """Run `sql` (with `?` placeholders) in `conn`'s transaction; returns the driver's cursor. Raises SQLAlchemy's
    DBAPIError subclasses (OperationalError, IntegrityError, ...) for driver errors."""
    if conn.dialect.paramstyle != "qmark":
        sql = _format_style(sql)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, params)
    except conn.dialect.loaded_dbapi.Error as exc:
        # raises the wrapped error (and invalidates a disconnected connection) as Connection.execute would
        conn._handle_dbapi_exception(exc, sql, params, cursor, None)
        raise
    return cursor


def one(conn: sa.Connection, sql: str, params: Params = ()) -> tuple | None:
    """The first row of `sql`'s result, or None."""
    cursor = execute(conn, sql, params)
    try:
        return cursor.fetchone()
    finally:
        cursor.close()


def scalar(conn: sa.Connection, sql: str, params: Params = ()) -> Any:
    """The first column of the first row, or None when there is no row."""
    row = one(conn, sql, params)
    return None if row is None else row[0]


def all_rows(conn: sa.Connection, sql: str, params: Params = ()) -> list[tuple]:
    cursor = execute(conn, sql, params)
    try:
        return cursor.fetchall()
    finally:
        cursor.close()


def run(conn: sa.Connection, sql: str, params: Params = ()) -> int:
    """Run a statement that returns no rows; returns its rowcount."""
    cursor = execute(conn, sql, params)
    try:
        return cursor.rowcount
    finally:
        cursor.close()


def for_update(conn: sa.Connection) -> str:
    """` FOR UPDATE` where the database locks rows that way (PostgreSQL); SQLite's writers are serialised by
    `BEGIN IMMEDIATE` instead."""
    return "" if conn.dialect.name == "sqlite" else " FOR UPDATE"


def primitive(values: Any) -> bool:
    """True if every value passes to both drivers unchanged (what the text path may bind)."""
    return all(v is None or type(v) in (str, int, float) for v in values)
