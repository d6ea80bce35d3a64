"""Admin keys (`/v1/organization/admin_api_keys`, `threadline keys add-admin`): stored as SHA-256 hashes, shown in
OpenAI's AdminApiKey shape. The key itself is returned once, when it is created."""

from __future__ import annotations

import secrets
from typing import Any

import sqlalchemy as sa

from . import schema
from .projects import OPERATOR, announce_key_change
from .sql import now


def _hash(value: str) -> str:
    import hashlib

    return hashlib.sha256(value.encode()).hexdigest()


def _object(row: Any) -> dict[str, Any]:
    return {
        "object": "organization.admin_api_key",
        "id": row.id,
        "name": row.name,
        "redacted_value": row.redacted_value,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "last_used_at": row.last_used_at,
        "owner": {
            "type": "user",
            "object": "organization.user",
            "id": OPERATOR["id"],
            "name": OPERATOR["name"],
            "created_at": row.created_at,
            "role": "owner",
        },
    }


def create(
    conn: sa.Connection, name: str | None, *, value: str | None = None, expires_in_s: int | None = None
) -> dict[str, Any] | None:
    """Store a new admin key (random `sk-admin-...` unless `value` is given). Returns the AdminApiKey object with
    its `value`, or None when that key is stored already."""
    t = schema.admin_api_keys
    value = value or "sk-admin-" + secrets.token_urlsafe(32)
    digest = _hash(value)
    if conn.execute(sa.select(t.c.seq).where(t.c.key_hash == digest)).first() is not None:
        return None
    created = now()
    row = {
        "id": "key_" + digest[:16],
        "key_hash": digest,
        "name": name,
        "redacted_value": f"{value[:8]}...{value[-3:]}",
        "created_at": created,
        "expires_at": created + expires_in_s if expires_in_s else None,
        "last_used_at": None,
    }
    conn.execute(t.insert().values(**row))
    announce_key_change(conn)  # the first key closes an open server; processes caching "open" must learn it
    obj = _object(_Row(row))
    return {**obj, "value": value}


class _Row:
    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def listed(conn: sa.Connection, *, after: str | None, order: str, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """A page of admin keys by creation order (`order` asc | desc) after the key `after` (None: from the start).
    Returns (objects, has_more). An unknown `after` gives an empty page."""
    t = schema.admin_api_keys
    query = sa.select(t).order_by(t.c.seq.asc() if order == "asc" else t.c.seq.desc()).limit(limit + 1)
    if after is not None:
        seq = conn.execute(sa.select(t.c.seq).where(t.c.id == after)).scalar()
        if seq is None:
            return [], False
        query = query.where(t.c.seq > seq if order == "asc" else t.c.seq < seq)
    rows = conn.execute(query).all()
    return [_object(r) for r in rows[:limit]], len(rows) > limit


def get(conn: sa.Connection, key_id: str) -> dict[str, Any] | None:
    row = conn.execute(sa.select(schema.admin_api_keys).where(schema.admin_api_keys.c.id == key_id)).first()
    return _object(row) if row is not None else None


def delete(conn: sa.Connection, key_id: str) -> bool:
    """Delete an admin key (refused from the commit on, in every process). False if there is no such key."""
    t = schema.admin_api_keys
    if conn.execute(t.delete().where(t.c.id == key_id)).rowcount == 0:
        return False
    announce_key_change(conn)  # processes cache admin keys they verified for the resource endpoints
    return True
