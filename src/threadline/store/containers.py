"""Containers and their files: rows of `containers` (the Container object, its `status` and `expires_at` in clock
seconds) and `container_files` (the ContainerFile object, its `path` in /mnt/data and the key of its bytes)."""

from __future__ import annotations

import sqlalchemy as sa

from . import schema
from .sql import ListParams, Page, Store, dumps, loads

RUNNING = "running"
EXPIRED = "expired"


def insert(conn: sa.Connection, obj: dict, expires_at: int | None) -> None:
    Store.insert(conn, schema.containers, obj, name=obj["name"], status=obj["status"], expires_at=expires_at)


def update(conn: sa.Connection, obj: dict, expires_at: int | None) -> None:
    Store.update(conn, schema.containers, obj, status=obj["status"], expires_at=expires_at)


def get(conn: sa.Connection, container_id: str, *, lock: bool = False) -> dict | None:
    return Store.fetch(conn, schema.containers, container_id, lock=lock)


def delete(conn: sa.Connection, container_id: str) -> list[str]:
    """Delete a container and its files' rows; the blob keys of those files (to delete after the commit)."""
    keys = delete_files(conn, container_id)
    Store.delete(conn, schema.containers, container_id)
    return keys


def page(store: Store, params: ListParams, *, name: str | None) -> Page:
    t = schema.containers
    where = t.c.name == name if name is not None else None
    return store.page(t, where=where, limit=params.limit, order=params.order, after=params.after)


def due(conn: sa.Connection, now: int, limit: int = 100) -> list[str]:
    """Ids of running containers whose `expires_at` has passed."""
    t = schema.containers
    query = sa.select(t.c.id).where(t.c.status == RUNNING, t.c.expires_at <= now).order_by(t.c.seq).limit(limit)
    return list(conn.execute(query).scalars())


# -- files ---------------------------------------------------------------------------------------------------------


def insert_file(conn: sa.Connection, obj: dict, blob_key: str) -> None:
    t = schema.container_files
    conn.execute(
        t.insert().values(
            id=obj["id"],
            created_at=obj["created_at"],
            data=dumps(obj),
            container_id=obj["container_id"],
            path=obj["path"],
            blob_key=blob_key,
        )
    )


def get_file(conn: sa.Connection, container_id: str, file_id: str) -> tuple[dict, str] | None:
    """The ContainerFile and its blob key, or None."""
    t = schema.container_files
    row = conn.execute(
        sa.select(t.c.data, t.c.blob_key).where(t.c.id == file_id, t.c.container_id == container_id)
    ).first()
    return (loads(row.data), row.blob_key) if row is not None else None


def files(conn: sa.Connection, container_id: str) -> list[tuple[dict, str]]:
    """Every file of a container in creation order, with its blob key."""
    t = schema.container_files
    rows = conn.execute(
        sa.select(t.c.data, t.c.blob_key).where(t.c.container_id == container_id).order_by(t.c.seq)
    ).all()
    return [(loads(r.data), r.blob_key) for r in rows]


def paths(conn: sa.Connection, container_id: str) -> set[str]:
    t = schema.container_files
    return set(conn.execute(sa.select(t.c.path).where(t.c.container_id == container_id)).scalars())


def file_at(conn: sa.Connection, container_id: str, path: str) -> tuple[dict, str] | None:
    """The file at `path` in a container (and its blob key), or None."""
    t = schema.container_files
    row = conn.execute(
        sa.select(t.c.data, t.c.blob_key).where(t.c.container_id == container_id, t.c.path == path)
    ).first()
    return (loads(row.data), row.blob_key) if row is not None else None


def page_files(store: Store, container_id: str, params: ListParams) -> Page:
    t = schema.container_files
    return store.page(
        t, where=t.c.container_id == container_id, limit=params.limit, order=params.order, after=params.after
    )


def delete_file(conn: sa.Connection, container_id: str, file_id: str) -> str | None:
    """Delete one file's row; its blob key, or None when there was no such file."""
    found = get_file(conn, container_id, file_id)
    if found is None:
        return None
    t = schema.container_files
    conn.execute(t.delete().where(t.c.id == file_id))
    return found[1]


def delete_files(conn: sa.Connection, container_id: str) -> list[str]:
    """Delete every file row of a container; their blob keys."""
    t = schema.container_files
    keys = list(conn.execute(sa.select(t.c.blob_key).where(t.c.container_id == container_id)).scalars())
    conn.execute(t.delete().where(t.c.container_id == container_id))
    return keys
