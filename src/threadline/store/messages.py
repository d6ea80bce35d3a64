"""Messages: the `messages` rows of a thread (token counts are derived by Store.insert/update)."""

from __future__ import annotations

import sqlalchemy as sa

from . import driver, schema
from .sql import MESSAGE, ListParams, Page, Store, loads, owned, owned_sql

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
    if run_id:
        return Store.text_page(
            conn, T, "thread_id = ? AND type = ? AND run_id = ?", (thread_id, MESSAGE, run_id), **params.__dict__
        )
    return Store.text_page(conn, T, "thread_id = ? AND type = ?", (thread_id, MESSAGE), **params.__dict__)


def newest(conn: sa.Connection, thread_id: str, limit: int) -> list[dict]:
    """The thread's `limit` newest messages, newest first."""
    query = (
        sa.select(T.c.data)
        .where(owned(T, T.c.thread_id == thread_id, T.c.type == MESSAGE))
        .order_by(T.c.seq.desc())
        .limit(limit)
    )
    return [loads(raw) for raw in conn.execute(query).scalars()]


def older_than(
    conn: sa.Connection, thread_id: str, not_run_id: str, limit: int, before_seq: int | None
) -> list[tuple[int, str, int | None]]:
    """Up to `limit` of the thread's messages newest first, except those `not_run_id` created, older than
    `before_seq` (a `seq`; None: from the newest): (seq, data JSON text, token_count) rows."""
    where, found = owned_sql(
        T, "thread_id = ? AND type = ? AND (run_id IS NULL OR run_id != ?)", (thread_id, MESSAGE, not_run_id)
    )
    sql = "SELECT seq, data, token_count FROM messages WHERE " + where
    args: list = list(found)
    if before_seq is not None:
        sql += " AND seq < ?"
        args.append(before_seq)
    args.append(limit)
    return driver.all_rows(conn, sql + " ORDER BY seq DESC LIMIT ?", args)
