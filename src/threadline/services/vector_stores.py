"""Vector stores, the files in them and file batches: creation (also from tool_resources helpers and file_search
attachments), the presented objects (counts and status computed from the file rows on every read), expiry,
search and the index clean-up after deletes. Ingestion itself is vector_stores.Ingestor's (in the background)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

import sqlalchemy as sa

from ..ids import new_id
from ..store import Page, dumps, loads, now
from ..store import vector_stores as repo
from ..store.sql import ListParams
from ..store.storage import is_disk_full
from . import files
from .deps import Deps
from .errors import Conflict, Invalid, NotFound, check_id

if TYPE_CHECKING:
    from ..config import Settings
    from ..file_search import Hit

THREAD_STORE_EXPIRY_DAYS = 7
EMPTY_COUNTS = {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0, "total": 0}


_day_s = 86400


def configure(settings: Settings) -> None:
    """Take the process's expiry 'day' from its settings (THREADLINE_EXPIRY_DAY_SECONDS); the Runtime calls this."""
    global _day_s
    _day_s = settings.expiry_day_seconds


def day_s() -> int:
    """Seconds in a 'day' of an expiry policy (86400 unless configured shorter, as tests do)."""
    return _day_s


@dataclass
class NewVectorStore:
    """A store to create. `chunking_strategy` is the request's (`{"type": "auto"}`, `{"type": "static", "static":
    {...}}` or None for auto); `expires_after` is `{"anchor": "last_active_at", "days": N}` or None; `owner` is the
    thread or assistant whose tool_resources helper created it (None for stores created through the API)."""

    name: str | None = None
    file_ids: list[str] = field(default_factory=list)
    chunking_strategy: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    expires_after: dict[str, Any] | None = None
    owner: str | None = None


@dataclass
class FileToAdd:
    """One file of a batch, with its own chunking strategy and attributes (None: the batch's)."""

    file_id: str
    chunking_strategy: dict[str, Any] | None = None
    attributes: dict[str, Any] | None = None


class StoreChanges(TypedDict, total=False):
    """The fields a modify request sent (absent keys are left as they are)."""

    name: str | None
    metadata: dict[str, Any] | None
    expires_after: dict[str, Any] | None


# -- objects ---------------------------------------------------------------------------------------------------------


def chunking_object(strategy: dict[str, Any] | None, auto: dict[str, int]) -> dict[str, Any]:
    """The strategy as reported on a vector-store file: `auto` is reported with the sizes actually used."""
    if strategy is None or strategy.get("type") == "auto":
        return {"type": "static", "static": dict(auto)}
    return strategy


def store_object(
    name: str | None, metadata: dict | None, expires_after: dict | None, owner: str | None = None
) -> dict[str, Any]:
    ts = now()
    obj = {
        "id": new_id("vector_store"),
        "object": "vector_store",
        "created_at": ts,
        "name": name or "",
        "usage_bytes": 0,
        "file_counts": dict(EMPTY_COUNTS),
        "status": "completed",
        "expires_after": expires_after,
        "expires_at": ts + expires_after["days"] * day_s() if expires_after else None,
        "last_active_at": ts,
        "metadata": metadata or {},
    }
    if owner:
        obj["_owner"] = owner
    return obj


def file_object(vs_id: str, file_id: str, chunking: dict, attributes: dict | None) -> dict:
    return {
        "id": file_id,
        "object": "vector_store.file",
        "usage_bytes": 0,
        "created_at": now(),
        "vector_store_id": vs_id,
        "status": "in_progress",
        "last_error": None,
        "chunking_strategy": chunking,
        "attributes": attributes,
    }


def is_expired(obj: dict[str, Any]) -> bool:
    return bool(obj.get("expires_at")) and now() >= obj["expires_at"]


def present(conn: sa.Connection, obj: dict[str, Any]) -> dict[str, Any]:
    """The wire object of a stored store: file counts, usage and status as they are now."""
    obj = {k: v for k, v in obj.items() if not k.startswith("_") and not (k == "expires_after" and v is None)}
    obj["file_counts"] = repo.counts(conn, vs_id=obj["id"])
    obj["usage_bytes"] = repo.completed_bytes(conn, obj["id"])
    if is_expired(obj):
        obj["status"] = "expired"
    else:
        obj["status"] = "in_progress" if obj["file_counts"]["in_progress"] else "completed"
    return obj


def present_batch(conn: sa.Connection, batch: dict[str, Any]) -> dict[str, Any]:
    c = repo.counts(conn, batch_id=batch["id"])
    batch = dict(batch, file_counts=c)
    if batch.get("status") == "cancelled" or (c["cancelled"] and not c["in_progress"]):
        batch["status"] = "cancelled"
    elif c["in_progress"]:
        batch["status"] = "in_progress"
    elif c["total"] and c["failed"] == c["total"]:
        batch["status"] = "failed"
    else:
        batch["status"] = "completed"
    return batch


def touch(conn: sa.Connection, vs_ids: list[str]) -> None:
    """Mark stores as used now (moves `last_active_at` and, with an expiry policy, `expires_at`)."""
    for vs_id in vs_ids:
        obj = repo.get(conn, vs_id, lock=True)
        if obj is None:
            continue
        obj["last_active_at"] = now()
        if obj.get("expires_after") and not is_expired(obj):
            obj["expires_at"] = obj["last_active_at"] + obj["expires_after"]["days"] * day_s()
        repo.update(conn, obj)


def attach_file(
    conn: sa.Connection, vs_id: str, file_id: str, chunking: dict, attributes: dict | None, batch_id: str | None = None
) -> dict[str, Any]:
    """Add (or re-add) a file to a store in `in_progress`; the Ingestor picks it up after commit."""
    obj = file_object(vs_id, file_id, chunking, attributes)
    repo.upsert_file(conn, obj, batch_id)
    return obj


def _load(conn: sa.Connection, vs_id: str, *, lock: bool = False) -> dict[str, Any]:
    check_id("vector_store", vs_id, "vector_store_id")
    obj = repo.get(conn, vs_id, lock=lock)
    if obj is None:
        raise NotFound("vector store", vs_id)
    return obj


def require(conn: sa.Connection, vs_id: str, param: str) -> dict[str, Any]:
    """The store `vs_id` sent as `param`; raises Invalid (not a store id) or NotFound."""
    check_id("vector_store", vs_id, param)
    obj = repo.get(conn, vs_id)
    if obj is None:
        raise NotFound("vector store", vs_id)
    return obj


def _load_file(conn: sa.Connection, vs_id: str, file_id: str, *, lock: bool = False) -> dict[str, Any]:
    _load(conn, vs_id)
    check_id("file", file_id, "file_id")
    obj = repo.get_file(conn, vs_id, file_id, lock=lock)
    if obj is None:
        raise NotFound("vector store file", file_id)
    return obj


# -- stores ----------------------------------------------------------------------------------------------------------


def create_in(deps: Deps, conn: sa.Connection, new: NewVectorStore) -> dict[str, Any]:
    """Create a store and attach its files inside the caller's transaction; returns the stored object (not
    presented). Raises Invalid / NotFound for a file id (param `file_ids[i]`)."""
    obj = store_object(new.name, new.metadata, new.expires_after, new.owner)
    repo.insert(conn, obj)
    strategy = chunking_object(new.chunking_strategy, deps.retrieval.auto_chunking)
    for i, file_id in enumerate(new.file_ids):
        files.require(conn, file_id, f"file_ids[{i}]")
        attach_file(conn, obj["id"], file_id, strategy, None)
    return obj


def create(deps: Deps, new: NewVectorStore) -> dict[str, Any]:
    """Create a store (its files start ingesting at once); returns the presented store."""
    with deps.store.write() as conn:
        out = present(conn, create_in(deps, conn, new))
    deps.ingestor.wake()
    return out


def create_from_helper(deps: Deps, conn: sa.Connection, new: NewVectorStore, owner: str) -> str:
    """The `vector_stores` helper of tool_resources: create the store (expiring 7 days after last use when its owner
    is a thread) and return its id."""
    expires = {"anchor": "last_active_at", "days": THREAD_STORE_EXPIRY_DAYS} if owner.startswith("thread_") else None
    created = NewVectorStore(
        file_ids=new.file_ids,
        chunking_strategy=new.chunking_strategy,
        metadata=new.metadata,
        expires_after=expires,
        owner=owner,
    )
    return create_in(deps, conn, created)["id"]


def attach_to_thread(deps: Deps, conn: sa.Connection, thread: dict[str, Any], file_id: str) -> None:
    """A message attachment for file_search goes into the thread's own store, created on demand (the thread object
    is changed in place; the caller saves it)."""
    resources = thread.setdefault("tool_resources", {})
    ids = resources.setdefault("file_search", {}).setdefault("vector_store_ids", [])
    if not ids:
        expires = {"anchor": "last_active_at", "days": THREAD_STORE_EXPIRY_DAYS}
        obj = store_object(None, None, expires, owner=thread["id"])
        repo.insert(conn, obj)
        ids.append(obj["id"])
    attach_file(conn, ids[0], file_id, chunking_object(None, deps.retrieval.auto_chunking), None)


def get(deps: Deps, vs_id: str) -> dict[str, Any]:
    with deps.store.read() as conn:
        return present(conn, _load(conn, vs_id))


def list_stores(deps: Deps, params: ListParams) -> Page:
    with deps.store.read() as conn:
        page = repo.page(deps.store, conn, params)
        page.items = [dumps(present(conn, loads(item))) for item in page.items]
    return page


def modify(deps: Deps, vs_id: str, changes: StoreChanges) -> dict[str, Any]:
    with deps.store.write() as conn:
        obj = _load(conn, vs_id, lock=True)
        if "name" in changes:
            obj["name"] = changes["name"] or ""
        if "metadata" in changes:
            obj["metadata"] = changes["metadata"] or {}
        if "expires_after" in changes:
            obj["expires_after"] = changes["expires_after"]
            base = obj.get("last_active_at") or now()
            obj["expires_at"] = base + obj["expires_after"]["days"] * day_s() if obj["expires_after"] else None
        repo.update(conn, obj)
        return present(conn, obj)


def delete(deps: Deps, vs_id: str) -> None:
    """Delete a store, its file rows and batches, then its chunks."""
    with deps.store.write() as conn:
        _load(conn, vs_id, lock=True)
        repo.delete(conn, vs_id)
    deps.retrieval.delete_store(vs_id)


def stats(deps: Deps, vs_id: str) -> dict[str, Any]:
    """threadline extension: what is in the index (chunks, sizes, embedding model, chunking per file)."""
    with deps.store.read() as conn:
        _load(conn, vs_id)
        stored = repo.files(conn, vs_id)
    per_file = deps.retrieval.file_stats(vs_id)
    empty = {"chunk_count": 0, "text_bytes": 0, "embedding_bytes": 0}
    return {
        "object": "vector_store.stats",
        "vector_store_id": vs_id,
        **deps.retrieval.stats(vs_id),
        "files": [
            {
                "file_id": f["id"],
                "status": f["status"],
                "usage_bytes": f["usage_bytes"],
                "chunking_strategy": f["chunking_strategy"],
                "last_error": f.get("last_error"),
                **per_file.get(f["id"], empty),
            }
            for f in stored
        ],
    }


def search(
    deps: Deps,
    vs_id: str,
    queries: list[str],
    *,
    k: int,
    filters: dict[str, Any] | None,
    score_threshold: float,
    rerank: bool,
) -> list[Hit]:
    """Search a store (blocking); marks it used unless the disk is full (a search is a read and works then).
    Raises Invalid / NotFound, or Conflict when the store has expired."""

    def check(conn: sa.Connection) -> None:
        if is_expired(_load(conn, vs_id)):
            raise Conflict(f"Vector store {vs_id} has expired.")

    try:
        with deps.store.write() as conn:
            check(conn)
            touch(conn, [vs_id])
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        with deps.store.read() as conn:
            check(conn)
    return deps.retrieval.search([vs_id], queries, k=k, filters=filters, score_threshold=score_threshold, rerank=rerank)


# -- files in a store ------------------------------------------------------------------------------------------------


def add_file(
    deps: Deps, vs_id: str, file_id: str, chunking_strategy: dict[str, Any] | None, attributes: dict | None
) -> dict[str, Any]:
    """Attach a File to a store (ingestion starts at once); returns the store's file object."""
    with deps.store.write() as conn:
        _load(conn, vs_id, lock=True)
        files.require(conn, file_id, "file_id")
        obj = attach_file(
            conn, vs_id, file_id, chunking_object(chunking_strategy, deps.retrieval.auto_chunking), attributes
        )
    deps.ingestor.wake()
    return obj


def list_files(deps: Deps, vs_id: str, params: ListParams, *, status: str | None, batch_id: str | None = None) -> Page:
    """A page of the store's (or one batch's) files, in one status when `status` is given."""
    if status is not None and status not in repo.STATUSES:
        raise Invalid(
            f"Invalid value: '{status}'. Supported values are: 'in_progress', 'completed', 'failed', and 'cancelled'.",
            param="filter",
            code="invalid_value",
        )
    with deps.store.read() as conn:
        _load(conn, vs_id)
        if batch_id is not None:
            batch = repo.get_batch(conn, batch_id)
            if batch is None or batch["vector_store_id"] != vs_id:
                raise NotFound("vector store file batch", batch_id)
        return repo.page_files(deps.store, conn, vs_id, params, batch_id=batch_id, status=status)


def get_file(deps: Deps, vs_id: str, file_id: str) -> dict[str, Any]:
    with deps.store.read() as conn:
        return _load_file(conn, vs_id, file_id)


def update_file(deps: Deps, vs_id: str, file_id: str, attributes: dict[str, Any] | None) -> dict[str, Any]:
    """Replace a store file's attributes (in its object and its chunks, for search filters)."""
    with deps.store.write() as conn:
        obj = _load_file(conn, vs_id, file_id, lock=True)  # ingestion may be finishing it meanwhile
        obj["attributes"] = attributes
        repo.update_file(conn, obj)
    deps.retrieval.update_attributes(vs_id, file_id, attributes)
    return obj


def remove_file(deps: Deps, vs_id: str, file_id: str) -> None:
    """Take a file out of a store (the File itself stays), then delete its chunks."""
    with deps.store.write() as conn:
        _load_file(conn, vs_id, file_id)
        repo.delete_file(conn, vs_id, file_id)
    deps.retrieval.delete_file(vs_id, file_id)


def file_content(deps: Deps, vs_id: str, file_id: str) -> list[str]:
    """The texts of a store file's chunks."""
    with deps.store.read() as conn:
        _load_file(conn, vs_id, file_id)
    return deps.retrieval.file_chunks(vs_id, file_id)


# -- batches ---------------------------------------------------------------------------------------------------------


def create_batch(deps: Deps, vs_id: str, entries: list[FileToAdd]) -> dict[str, Any]:
    """Attach several files at once as one batch; returns the presented batch. Raises Invalid / NotFound for a file
    (param `file_ids[i]`), adding none of them then."""
    auto = deps.retrieval.auto_chunking
    with deps.store.write() as conn:
        _load(conn, vs_id, lock=True)
        batch = {
            "id": new_id("file_batch"),
            "object": "vector_store.files_batch",
            "created_at": now(),
            "vector_store_id": vs_id,
            "status": "in_progress",
            "file_counts": dict(EMPTY_COUNTS),
        }
        repo.insert_batch(conn, batch)
        for i, entry in enumerate(entries):
            files.require(conn, entry.file_id, f"file_ids[{i}]")
            chunking = chunking_object(entry.chunking_strategy, auto)
            attach_file(conn, vs_id, entry.file_id, chunking, entry.attributes, batch_id=batch["id"])
        out = present_batch(conn, batch)
    deps.ingestor.wake()
    return out


def _load_batch(conn: sa.Connection, vs_id: str, batch_id: str, *, lock: bool = False) -> dict[str, Any]:
    _load(conn, vs_id)
    check_id("file_batch", batch_id, "batch_id")
    batch = repo.get_batch(conn, batch_id, lock=lock)
    if batch is None or batch["vector_store_id"] != vs_id:
        raise NotFound("vector store file batch", batch_id)
    return batch


def get_batch(deps: Deps, vs_id: str, batch_id: str) -> dict[str, Any]:
    with deps.store.read() as conn:
        return present_batch(conn, _load_batch(conn, vs_id, batch_id))


def cancel_batch(deps: Deps, vs_id: str, batch_id: str) -> dict[str, Any]:
    """Cancel a batch: its files still in progress become `cancelled`."""
    with deps.store.write() as conn:
        batch = _load_batch(conn, vs_id, batch_id, lock=True)
        repo.cancel_batch_files(conn, batch_id)
        batch["status"] = "cancelled"
        repo.update_batch(conn, batch)
        return present_batch(conn, batch)
