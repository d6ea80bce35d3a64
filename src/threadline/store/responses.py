"""The `responses` table: Responses API objects (`data`), this request's input items (`input`, with ids), the
conversation (`thread_id`) and `previous_response_id`, and the execution columns shared with `runs`."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from . import schema
from .sql import Store, dumps, loads, owned


def insert(
    conn: sa.Connection,
    response: dict[str, Any],
    input_items: list[dict[str, Any]],
    *,
    thread_id: str | None = None,
    state: dict[str, Any] | None = None,
    expires_at: int | None = None,
) -> None:
    """Store a response object (its `status` and `previous_response_id` become columns) with its input items."""
    Store.insert(
        conn,
        schema.responses,
        response,
        thread_id=thread_id,
        previous_response_id=response.get("previous_response_id"),
        input=dumps(input_items),
        status=response["status"],
        state=dumps(state or {}),
        expires_at=expires_at,
    )


def fetch(conn: sa.Connection, response_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    return Store.fetch(conn, schema.responses, response_id, lock=lock)


def input_items(conn: sa.Connection, response_id: str) -> list[dict[str, Any]] | None:
    """The input items a response was created with, in request order (None: no such response)."""
    t = schema.responses
    raw = conn.execute(sa.select(t.c.input).where(owned(t, t.c.id == response_id))).scalar()
    return loads(raw) if raw is not None else None


def delete(conn: sa.Connection, response_id: str) -> bool:
    return Store.delete(conn, schema.responses, response_id)
