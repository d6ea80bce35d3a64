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
    return Store.fetch_raw(conn, T, thread_id)


def exists(conn: sa.Connection, thread_id: str) -> bool:
    return Store.exists(conn, T, thread_id)


def insert(conn: sa.Connection, thread: dict) -> None:
    Store.insert(conn, T, thread)


def update(conn: sa.Connection, thread: dict) -> None:
    Store.update(conn, T, thread)


def delete(conn: sa.Connection, thread_id: str) -> bool:
    """Delete a thread (= its conversation) with every row of its log (messages and other items), its runs and
    steps. False when there was no such thread. Responses that used it as their conversation are kept: they hold
    their own input and output."""
    if not Store.delete(conn, T, thread_id):
        return False
    for table in (schema.messages, schema.run_steps, schema.runs):
        conn.execute(table.delete().where(table.c.thread_id == thread_id))
    return True
