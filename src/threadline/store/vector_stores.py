"""Vector stores: the `vector_stores` rows, the files in them (`vector_store_files`, one row per store and file)
and their file batches (`file_batches`). The chunks themselves are in the chunk index (retrieval/)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from . import schema
from .sql import ListParams, Page, Store, dumps, loads

S, F, B = schema.vector_stores, schema.vector_store_files, schema.file_batches
STATUSES = ("in_progress", "completed", "failed", "cancelled")

# -- stores ----------------------------------------------------------------------------------------------------------


def insert(conn: sa.Connection, obj: dict[str, Any]) -> None:
    Store.insert(conn, S, obj, expires_at=obj["expires_at"])


def update(conn: sa.Connection, obj: dict[str, Any]) -> None:
    Store.update(conn, S, obj, expires_at=obj["expires_at"])


def get(conn: sa.Connection, vs_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    return Store.fetch(conn, S, vs_id, lock=lock)


def delete(conn: sa.Connection, vs_id: str) -> bool:
    """Delete a store with its file rows and batches (its chunks are the index's to delete)."""
    for table in (F, B):
        conn.execute(table.delete().where(table.c.vector_store_id == vs_id))
    return Store.delete(conn, S, vs_id)


def page(store: Store, conn: sa.Connection, params: ListParams) -> Page:
    return store.page(S, conn=conn, **params.__dict__)


def counts(conn: sa.Connection, *, vs_id: str | None = None, batch_id: str | None = None) -> dict[str, int]:
    """Files per status (and `total`) in a store or a batch."""
    where = F.c.batch_id == batch_id if batch_id is not None else F.c.vector_store_id == vs_id
    out = {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0, "total": 0}
    for status, n in conn.execute(sa.select(F.c.status, sa.func.count()).where(where).group_by(F.c.status)):
        out[status] = n
        out["total"] += n
    return out


def completed_bytes(conn: sa.Connection, vs_id: str) -> int:
    """The `usage_bytes` of the store's completed files, summed."""
    query = sa.select(F.c.data).where(F.c.vector_store_id == vs_id, F.c.status == "completed")
    return sum(loads(raw)["usage_bytes"] for raw in conn.execute(query).scalars())


# -- files in a store ------------------------------------------------------------------------------------------------


def upsert_file(conn: sa.Connection, obj: dict[str, Any], batch_id: str | None) -> None:
    """Write a store's file row in `in_progress`, replacing the row of a file that is already in the store."""
    vs_id, file_id = obj["vector_store_id"], obj["id"]
    existing = conn.execute(sa.select(F.c.seq).where(F.c.vector_store_id == vs_id, F.c.file_id == file_id)).scalar()
    if existing is not None:
        conn.execute(
            F.update()
            .where(F.c.seq == existing)
            .values(status="in_progress", data=dumps(obj), batch_id=batch_id, created_at=obj["created_at"])
        )
    else:
        conn.execute(
            F.insert().values(
                vector_store_id=vs_id,
                file_id=file_id,
                batch_id=batch_id,
                status="in_progress",
                created_at=obj["created_at"],
                data=dumps(obj),
            )
        )


def get_file(conn: sa.Connection, vs_id: str, file_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    query = sa.select(F.c.data).where(F.c.vector_store_id == vs_id, F.c.file_id == file_id)
    raw = conn.execute(query.with_for_update() if lock else query).scalar()
    return loads(raw) if raw is not None else None


def update_file(conn: sa.Connection, obj: dict[str, Any]) -> None:
    """Save a store file's object (its status column unchanged)."""
    where = (F.c.vector_store_id == obj["vector_store_id"]) & (F.c.file_id == obj["id"])
    conn.execute(F.update().where(where).values(data=dumps(obj)))


def delete_file(conn: sa.Connection, vs_id: str, file_id: str) -> bool:
    return conn.execute(F.delete().where(F.c.vector_store_id == vs_id, F.c.file_id == file_id)).rowcount > 0


def files(conn: sa.Connection, vs_id: str) -> list[dict[str, Any]]:
    """Every file object of the store, in the order they were added."""
    query = sa.select(F.c.data).where(F.c.vector_store_id == vs_id).order_by(F.c.seq)
    return [loads(raw) for raw in conn.execute(query).scalars()]


def page_files(
    store: Store,
    conn: sa.Connection,
    vs_id: str,
    params: ListParams,
    *,
    batch_id: str | None,
    status: str | None,
) -> Page:
    """A page of the store's files (those of one batch, those in one status), by cursor (a file id)."""
    where = F.c.vector_store_id == vs_id
    if batch_id is not None:
        where = where & (F.c.batch_id == batch_id)
    if status is not None:
        where = where & (F.c.status == status)
    return store.page(F, where=where, id_column="file_id", conn=conn, **params.__dict__)


def remove_file_everywhere(conn: sa.Connection, file_id: str) -> list[str]:
    """Take a File out of every store; returns the ids of the stores it was in."""
    stores = list(conn.execute(sa.select(F.c.vector_store_id).where(F.c.file_id == file_id)).scalars())
    conn.execute(F.delete().where(F.c.file_id == file_id))
    return stores


# -- batches ---------------------------------------------------------------------------------------------------------


def insert_batch(conn: sa.Connection, batch: dict[str, Any]) -> None:
    Store.insert(conn, B, batch, vector_store_id=batch["vector_store_id"])


def get_batch(conn: sa.Connection, batch_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    return Store.fetch(conn, B, batch_id, lock=lock)


def update_batch(conn: sa.Connection, batch: dict[str, Any]) -> None:
    Store.update(conn, B, batch)


def cancel_batch_files(conn: sa.Connection, batch_id: str) -> None:
    """The batch's files still `in_progress` become `cancelled` (ingestion then leaves them alone)."""
    rows = conn.execute(
        sa.select(F.c.seq, F.c.data).where(F.c.batch_id == batch_id, F.c.status == "in_progress").with_for_update()
    ).all()
    for seq, raw in rows:
        obj = loads(raw)
        obj["status"] = "cancelled"
        conn.execute(F.update().where(F.c.seq == seq).values(status="cancelled", data=dumps(obj)))


# -- ingestion -------------------------------------------------------------------------------------------------------


def pending(conn: sa.Connection) -> list[tuple[str, str]]:
    """(store id, file id) of every file waiting for ingestion, oldest first."""
    query = sa.select(F.c.vector_store_id, F.c.file_id).where(F.c.status == "in_progress").order_by(F.c.seq)
    return [(r[0], r[1]) for r in conn.execute(query).all()]


def pending_count(conn: sa.Connection, vs_ids: list[str]) -> int:
    """How many files of these stores are still being ingested."""
    query = sa.select(sa.func.count()).where(F.c.vector_store_id.in_(vs_ids), F.c.status == "in_progress")
    return int(conn.execute(query).scalar() or 0)


def get_pending_file(conn: sa.Connection, vs_id: str, file_id: str) -> dict[str, Any] | None:
    """The store's file object if it is still `in_progress`."""
    query = sa.select(F.c.data).where(F.c.vector_store_id == vs_id, F.c.file_id == file_id, F.c.status == "in_progress")
    raw = conn.execute(query).scalar()
    return loads(raw) if raw is not None else None


def finish_file(conn: sa.Connection, vs_id: str, file_id: str, status: str, usage: int, error: dict | None) -> bool:
    """Set an `in_progress` file's outcome (status, usage_bytes, last_error). False when it was cancelled or removed
    meanwhile (nothing changes then)."""
    row = conn.execute(
        sa.select(F.c.seq, F.c.data).where(F.c.vector_store_id == vs_id, F.c.file_id == file_id).with_for_update()
    ).first()
    if row is None:
        return False
    obj = loads(row[1])
    if obj["status"] != "in_progress":
        return False
    obj.update(status=status, usage_bytes=usage, last_error=error)
    conn.execute(F.update().where(F.c.seq == row[0]).values(status=status, data=dumps(obj)))
    return True
