"""Threads: the `threads` rows (the stored thread object) and what goes with a thread when it is deleted."""

from __future__ import annotations

import sqlalchemy as sa

from . import schema
from .sql import Store

T = schema.threads


def get(conn: sa.Connection, thread_id: str, *, lock: bool = False) -> dict | None:
    """The thread, or None; `lock` holds its row lock (PostgreSQL) for the rest of the write transaction."""
    return Store.fetch(conn, T, thread_id, lock=lock)


def get_raw(conn: sa.Connection, thread_id: str) -> str | None:
    """The stored JSON text of the thread, or None."""
    return conn.execute(sa.select(T.c.data).where(T.c.id == thread_id)).scalar()


def exists(conn: sa.Connection, thread_id: str) -> bool:
    return conn.execute(sa.select(T.c.seq).where(T.c.id == thread_id)).first() is not None


def insert(conn: sa.Connection, thread: dict) -> None:
    Store.insert(conn, T, thread)


def update(conn: sa.Connection, thread: dict) -> None:
    Store.update(conn, T, thread)


def delete(conn: sa.Connection, thread_id: str) -> bool:
    """Delete a thread (= its conversation) with every row of its log (messages and other items), its runs and
    steps. False when there was no such thread. Responses that used it as their conversation are kept: they hold
    their own input and output."""
    for table in (schema.messages, schema.run_steps, schema.runs):
        conn.execute(table.delete().where(table.c.thread_id == thread_id))
    return Store.delete(conn, T, thread_id)
