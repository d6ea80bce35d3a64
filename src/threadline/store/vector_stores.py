"""Vector stores: the `vector_stores` rows, the files in them (`vector_store_files`, one row per store and file)
and their file batches (`file_batches`). The chunks themselves are in the chunk index (retrieval/)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..tenancy import project_id
from . import schema
from .sql import ListParams, Page, Store, dumps, loads, owned

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
            .values(
                status="in_progress",
                data=dumps(obj),
                batch_id=batch_id,
                created_at=obj["created_at"],
                claim_owner=None,
                claim_until=None,
            )
        )
    else:
        conn.execute(
            F.insert().values(
                project_id=project_id(),
                vector_store_id=vs_id,
                file_id=file_id,
                batch_id=batch_id,
                status="in_progress",
                created_at=obj["created_at"],
                data=dumps(obj),
            )
        )


def get_file(conn: sa.Connection, vs_id: str, file_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    query = sa.select(F.c.data).where(owned(F, F.c.vector_store_id == vs_id, F.c.file_id == file_id))
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


def _unclaimed(ts: float) -> sa.ColumnElement[bool]:
    """Waiting for ingestion and claimed by no process (or its claim ran out before `ts`)."""
    return (F.c.status == "in_progress") & sa.or_(
        F.c.claim_owner.is_(None), F.c.claim_until.is_(None), F.c.claim_until < ts
    )


def any_claimable(conn: sa.Connection, ts: float) -> bool:
    """Whether some file waits for ingestion that no process has claimed at `ts`."""
    return conn.execute(sa.select(F.c.seq).where(_unclaimed(ts)).limit(1)).first() is not None


def claim_pending(
    conn: sa.Connection, owner: str, ts: float, until: float, limit: int, *, skip_locked: bool
) -> list[tuple[str, str, str]]:
    """Claim for `owner` until `until` (clock seconds) up to `limit` files waiting for ingestion that nobody has
    claimed at `ts`, oldest first; (store id, file id, project id) of each. `skip_locked` (PostgreSQL): rows other
    transactions are claiming are skipped, not waited for."""
    query = (
        sa.select(F.c.seq, F.c.vector_store_id, F.c.file_id, F.c.project_id)
        .where(_unclaimed(ts))
        .order_by(F.c.seq)
        .limit(limit)
    )
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    rows = conn.execute(query).all()
    if rows:
        conn.execute(F.update().where(F.c.seq.in_([r[0] for r in rows])).values(claim_owner=owner, claim_until=until))
    return [(r[1], r[2], r[3]) for r in rows]


def unclaim(conn: sa.Connection, owner: str, group: list[tuple[str, str]]) -> None:
    """Give up `owner`'s claims on these (store id, file id) files."""
    for vs_id, file_id in group:
        conn.execute(
            F.update()
            .where(F.c.vector_store_id == vs_id, F.c.file_id == file_id, F.c.claim_owner == owner)
            .values(claim_owner=None, claim_until=None)
        )


def renew_claims(conn: sa.Connection, owner: str, until: float) -> None:
    """Extend `owner`'s claims on files still being ingested to `until`."""
    conn.execute(F.update().where(F.c.claim_owner == owner, F.c.status == "in_progress").values(claim_until=until))


def live_claim_owners(conn: sa.Connection, ts: float) -> set[str]:
    """Owners of ingestion claims not run out at `ts`."""
    query = (
        sa.select(F.c.claim_owner)
        .distinct()
        .where(F.c.status == "in_progress", F.c.claim_owner.is_not(None), F.c.claim_until >= ts)
    )
    return set(conn.execute(query).scalars())


def release_claims(conn: sa.Connection, owners: list[str]) -> int:
    """The ingestion claims of `owners` (dead processes) become free for the others; how many."""
    query = F.update().where(F.c.claim_owner.in_(owners)).values(claim_owner=None, claim_until=None)
    return conn.execute(query).rowcount


def pending_count(conn: sa.Connection, vs_ids: list[str]) -> int:
    """How many files of these stores are still being ingested."""
    query = sa.select(sa.func.count()).where(owned(F, F.c.vector_store_id.in_(vs_ids), F.c.status == "in_progress"))
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
