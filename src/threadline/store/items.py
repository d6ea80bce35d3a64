"""A conversation's append log: the rows of `messages` for one thread, of every `type`.

Message rows (`type = 'message'`) hold an Assistants message object in `data` (and, when created through the
Conversations API, the item as sent in `item`); every other row holds its conversation item in `data`. `seq` is the
one order both APIs page through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..tenancy import project_id
from ..tokens import item_text_tokens, message_text_tokens
from . import schema
from .sql import ACTIVE_RESPONSE_STATUSES, ACTIVE_RUN_STATUSES, MESSAGE, Store, dumps, loads, owned


@dataclass
class ItemRow:
    """One row of the log: `type`, the stored document (`data`), and for messages the item as sent (or None)."""

    id: str
    type: str
    data: dict[str, Any]
    item: dict[str, Any] | None = None


def append(conn: sa.Connection, thread_id: str, rows: list[ItemRow], created_at: int) -> None:
    """Append rows to a thread's log in order (in the current project), each with its stored token count."""
    t = schema.messages
    project = project_id()
    for row in rows:
        message = row.type == MESSAGE
        conn.execute(
            t.insert().values(
                id=row.id,
                created_at=row.data["created_at"] if message else created_at,
                data=dumps(row.data),
                thread_id=thread_id,
                type=row.type,
                item=dumps(row.item) if row.item is not None else None,
                token_count=message_text_tokens(row.data) if message else item_text_tokens(row.data),
                project_id=project,
            )
        )


def _row(r: sa.Row) -> ItemRow:
    return ItemRow(id=r.id, type=r.type, data=loads(r.data), item=loads(r.item) if r.item else None)


def page(
    conn: sa.Connection, thread_id: str, *, limit: int, order: str, after: str | None
) -> tuple[list[ItemRow], bool]:
    """A page of a thread's log (`order` by append order, starting after the item `after`), and whether more follow.

    An `after` that is not an item of this thread gives an empty page, as in the other lists."""
    t = schema.messages
    scope = owned(t, t.c.thread_id == thread_id)
    query = sa.select(t.c.id, t.c.type, t.c.data, t.c.item).where(scope)
    asc = order == "asc"
    if after:
        cursor = sa.select(t.c.seq).where(t.c.id == after, scope).scalar_subquery()
        query = query.where(t.c.seq > cursor if asc else t.c.seq < cursor)
    query = query.order_by(t.c.seq.asc() if asc else t.c.seq.desc()).limit(limit + 1)
    rows = conn.execute(query).all()
    return [_row(r) for r in rows[:limit]], len(rows) > limit


def get(conn: sa.Connection, thread_id: str, item_id: str, *, lock: bool = False) -> ItemRow | None:
    t = schema.messages
    query = sa.select(t.c.id, t.c.type, t.c.data, t.c.item).where(
        owned(t, t.c.id == item_id, t.c.thread_id == thread_id)
    )
    if lock:
        query = query.with_for_update()
    r = conn.execute(query).first()
    return _row(r) if r is not None else None


def find(conn: sa.Connection, item_id: str) -> ItemRow | None:
    """An item of any conversation, by id (for `item_reference`)."""
    t = schema.messages
    r = conn.execute(sa.select(t.c.id, t.c.type, t.c.data, t.c.item).where(owned(t, t.c.id == item_id))).first()
    return _row(r) if r is not None else None


def delete(conn: sa.Connection, thread_id: str, item_id: str) -> bool:
    t = schema.messages
    return conn.execute(t.delete().where(owned(t, t.c.id == item_id, t.c.thread_id == thread_id))).rowcount > 0


def token_total(conn: sa.Connection, thread_id: str, overhead: int) -> int:
    """Stored text tokens of every row of a thread's log, plus `overhead` per row."""
    t = schema.messages
    total, count = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(t.c.token_count), 0), sa.func.count()).where(
            owned(t, t.c.thread_id == thread_id)
        )
    ).one()
    return int(total) + overhead * int(count)


def active_execution(conn: sa.Connection, thread_id: str) -> str | None:
    """The id of a run or response that holds this thread's lock (queued, in progress, waiting for tool outputs or
    cancelling), or None."""
    return Store.active_run_id(conn, thread_id)


__all__ = ["ACTIVE_RESPONSE_STATUSES", "ACTIVE_RUN_STATUSES", "ItemRow", "active_execution", "append", "get", "page"]
