"""Uploads: the `uploads` rows and their parts (`upload_parts`, each naming its bytes in the blob store)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from . import schema
from .sql import Store

U, P = schema.uploads, schema.upload_parts


def insert(conn: sa.Connection, upload: dict[str, Any]) -> None:
    Store.insert(conn, U, upload, status=upload["status"], expires_at=upload["expires_at"])


def get(conn: sa.Connection, upload_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    return Store.fetch(conn, U, upload_id, lock=lock)


def update(conn: sa.Connection, upload: dict[str, Any]) -> None:
    Store.update(conn, U, upload, status=upload["status"])


def expired_ids(conn: sa.Connection, now_s: int) -> list[str]:
    """Uploads still `pending` whose `expires_at` has passed."""
    return list(conn.execute(sa.select(U.c.id).where(U.c.status == "pending", U.c.expires_at <= now_s)).scalars())


def insert_part(conn: sa.Connection, part: dict[str, Any], size: int, blob_key: str) -> None:
    Store.insert(conn, P, part, upload_id=part["upload_id"], bytes=size, blob_key=blob_key)


def parts(conn: sa.Connection, upload_id: str) -> dict[str, tuple[int, str]]:
    """part id -> (bytes, blob key) of the upload's parts."""
    rows = conn.execute(sa.select(P.c.id, P.c.bytes, P.c.blob_key).where(P.c.upload_id == upload_id)).all()
    return {r[0]: (r[1], r[2]) for r in rows}


def delete_parts(conn: sa.Connection, upload_id: str) -> list[str]:
    """Delete the upload's parts; returns their blob keys (the caller deletes those bytes after the commit)."""
    keys = list(conn.execute(sa.select(P.c.blob_key).where(P.c.upload_id == upload_id)).scalars())
    conn.execute(P.delete().where(P.c.upload_id == upload_id))
    return keys
