"""Files: the `files` rows (the File object, its purpose and the key of its bytes in the blob store)."""

from __future__ import annotations

import sqlalchemy as sa

from . import schema
from .sql import ListParams, Page, Store, dumps, loads, owned

T = schema.files


def insert(conn: sa.Connection, obj: dict, blob_key: str) -> None:
    Store.insert(conn, T, obj, purpose=obj["purpose"], blob_key=blob_key)


def get(conn: sa.Connection, file_id: str) -> dict | None:
    return Store.fetch(conn, T, file_id)


def get_raw(conn: sa.Connection, file_id: str) -> str | None:
    return Store.fetch_raw(conn, T, file_id)


def blob_key(conn: sa.Connection, file_id: str) -> str | None:
    """Where the file's bytes are; None when there is no such file (in the current project)."""
    return conn.execute(sa.select(T.c.blob_key).where(owned(T, T.c.id == file_id))).scalar()


def with_blob_keys(conn: sa.Connection, file_ids: list[str]) -> dict[str, tuple[dict, str]]:
    """file id -> (File object, blob key) for those of `file_ids` that exist (in the current project)."""
    rows = conn.execute(sa.select(T.c.id, T.c.data, T.c.blob_key).where(owned(T, T.c.id.in_(file_ids)))).all()
    return {r[0]: (loads(r[1]), r[2]) for r in rows}


def filenames(conn: sa.Connection, file_ids: list[str] | set[str]) -> dict[str, str]:
    """file id -> filename for those of `file_ids` that exist (in the current project)."""
    rows = conn.execute(sa.select(T.c.id, T.c.data).where(owned(T, T.c.id.in_(list(file_ids))))).all()
    return {r[0]: loads(r[1])["filename"] for r in rows}


def delete(conn: sa.Connection, file_id: str) -> bool:
    return Store.delete(conn, T, file_id)


def page(store: Store, params: ListParams, *, purpose: str | None) -> Page:
    where = (T.c.purpose == purpose) if purpose else None
    return store.page(T, where=where, **params.__dict__)


def strip_code_interpreter_file(conn: sa.Connection, table: sa.Table, file_id: str) -> None:
    """Remove `file_id` from `tool_resources.code_interpreter.file_ids` of every object of `table` (assistants or
    threads) that lists it."""
    query = sa.select(table.c.id, table.c.data).where(owned(table, table.c.data.contains(file_id))).with_for_update()
    for object_id, raw in conn.execute(query).all():
        obj = loads(raw)
        ci = (obj.get("tool_resources") or {}).get("code_interpreter")
        if ci and file_id in ci.get("file_ids", []):
            ci["file_ids"] = [f for f in ci["file_ids"] if f != file_id]
            conn.execute(table.update().where(table.c.id == object_id).values(data=dumps(obj)))
