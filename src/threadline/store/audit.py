"""The audit log (`GET /v1/organization/audit_logs`): one row per change to keys, projects, service accounts and
limits, in OpenAI's AuditLog shape.

`record` is called with the connection of the change it records, so the change and its record commit together
(or not at all).
"""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa

from ..ids import new_id
from . import schema
from .projects import OPERATOR
from .sql import now

# The actor of changes made with `threadline keys` on the server's machine.
CLI_ACTOR: dict[str, Any] = {
    "type": "session",
    "session": {"user": {"id": OPERATOR["id"], "email": OPERATOR["email"]}, "ip_address": "127.0.0.1"},
}


def api_key_actor(key_id: str | None) -> dict[str, Any]:
    """The actor of a change made over HTTP with the key `key_id` (an admin key; None on an open server)."""
    return {
        "type": "api_key",
        "api_key": {
            "id": key_id or "key_open_server",
            "type": "user",
            "user": {"id": OPERATOR["id"], "email": OPERATOR["email"]},
        },
    }


def request_actor() -> dict[str, Any]:
    """The actor of the current request: its key."""
    from ..auth import request_key_id  # the request's key, set by the middleware

    return api_key_actor(request_key_id.get())


def record(
    conn: sa.Connection,
    event_type: str,
    *,
    project_id: str | None = None,
    actor: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    resource_id: str | None = None,
) -> dict[str, Any]:
    """Record an event of `event_type` (an AuditLogEventType such as `project.created`) in `conn`'s transaction.

    `actor` is an AuditLogActor (default: the current request's key, `request_actor()`); `details` is the event's
    payload, shown under the key named by the type (e.g. `{"id": "key_...", "data": {...}}`); `project_id` scopes
    the event to a project (its name is looked up now, as the log shows it). Returns the AuditLog object.
    """
    actor = actor if actor is not None else request_actor()
    details = details or {}
    event: dict[str, Any] = {"id": new_id("audit_log"), "type": event_type, "effective_at": now()}
    if project_id is not None:
        t = schema.projects
        name = conn.execute(sa.select(t.c.name).where(t.c.id == project_id)).scalar()
        event["project"] = {"id": project_id, "name": name or ""}
    event["actor"] = actor
    event[event_type] = details
    actor_id = _actor_id(actor)
    conn.execute(
        schema.audit_logs.insert().values(
            id=event["id"],
            type=event_type,
            effective_at=event["effective_at"],
            project_id=project_id,
            actor_id=actor_id,
            resource_id=resource_id if resource_id is not None else details.get("id"),
            data=orjson.dumps(event).decode(),
        )
    )
    return event


def _actor_id(actor: dict[str, Any]) -> str | None:
    if actor.get("type") == "api_key":
        return actor.get("api_key", {}).get("id")
    return actor.get("session", {}).get("user", {}).get("id")


def listed(
    conn: sa.Connection,
    *,
    effective_at: dict[str, int] | None = None,
    event_types: list[str] | None = None,
    project_ids: list[str] | None = None,
    actor_ids: list[str] | None = None,
    resource_ids: list[str] | None = None,
    after: str | None = None,
    before: str | None = None,
    limit: int = 20,
) -> tuple[list[dict[str, Any]], bool]:
    """A page of the audit log, newest first, as OpenAI lists it: `effective_at` bounds (`gt`, `gte`, `lt`, `lte`,
    Unix seconds), filters (an empty or None list does not filter), and the cursors `after` (older than that
    event) or `before` (newer than it). Returns (AuditLog objects, has_more); an unknown cursor gives an empty
    page."""
    t = schema.audit_logs
    conds: list[Any] = []
    for op, bound in (effective_at or {}).items():
        column = t.c.effective_at
        conds.append({"gt": column > bound, "gte": column >= bound, "lt": column < bound, "lte": column <= bound}[op])
    for column, values in (
        (t.c.type, event_types),
        (t.c.project_id, project_ids),
        (t.c.actor_id, actor_ids),
        (t.c.resource_id, resource_ids),
    ):
        if values:
            conds.append(column.in_(values))
    newest_first = True
    for cursor, older in ((after, True), (before, False)):
        if cursor is None:
            continue
        seq = conn.execute(sa.select(t.c.seq).where(t.c.id == cursor)).scalar()
        if seq is None:
            return [], False
        conds.append(t.c.seq < seq if older else t.c.seq > seq)
        newest_first = older
    order = t.c.seq.desc() if newest_first else t.c.seq.asc()
    rows = conn.execute(sa.select(t.c.data).where(*conds).order_by(order).limit(limit + 1)).scalars().all()
    events = [orjson.loads(r) for r in rows[:limit]]
    if not newest_first:
        events.reverse()
    return events, len(rows) > limit
