"""Messages: the `messages` rows of a thread (token counts are derived by Store.insert/update)."""

from __future__ import annotations

import sqlalchemy as sa

from . import schema
from .sql import MESSAGE, ListParams, Page, Store, loads

T = schema.messages


def get(conn: sa.Connection, message_id: str, *, lock: bool = False) -> dict | None:
    return Store.fetch(conn, T, message_id, lock=lock)


def insert(conn: sa.Connection, message: dict) -> None:
    Store.insert(conn, T, message, thread_id=message["thread_id"])


def update(conn: sa.Connection, message: dict) -> None:
    Store.update(conn, T, message)


def delete(conn: sa.Connection, message_id: str) -> bool:
    return Store.delete(conn, T, message_id)


def page(
    store: Store,
    conn: sa.Connection,
    thread_id: str,
    params: ListParams,
    *,
    run_id: str | None,
) -> Page:
    """A page of a thread's messages (only those `run_id` created, when given), by cursor as in Store.page."""
    where = (T.c.thread_id == thread_id) & (T.c.type == MESSAGE)
    if run_id:
        where = where & (T.c.run_id == run_id)
    return store.page(T, where=where, conn=conn, **params.__dict__)


def newest(conn: sa.Connection, thread_id: str, limit: int) -> list[dict]:
    """The thread's `limit` newest messages, newest first."""
    query = (
        sa.select(T.c.data).where(T.c.thread_id == thread_id, T.c.type == MESSAGE).order_by(T.c.seq.desc()).limit(limit)
    )
    return [loads(raw) for raw in conn.execute(query).scalars()]
