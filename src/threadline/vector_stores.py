"""Vector stores: objects, counts and the background ingestion of their files.

Ingestion never runs in the request: attaching a file writes a `vector_store_files` row in `in_progress`, and the
Ingestor (bounded concurrency, CPU work in threads) parses, chunks, embeds and indexes it, then marks it
`completed` or `failed` with `last_error`. Counts and statuses are computed from those rows on every read, so
they are always true. Several server processes may ingest: each claims the rows it takes (claim_owner /
claim_until, FOR UPDATE SKIP LOCKED on PostgreSQL, renewed while it works), so no file is embedded twice; the
claim of a process that died runs out (or the sweeper frees it at once, engine.sweeper) and another process takes
the file. Rows still `in_progress` after a restart are picked up again (indexing is idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

import sqlalchemy as sa

from .engine.executor import OWNER
from .ids import new_id
from .store import Store, dumps, loads, now, schema
from .store.blobs_s3 import BlobStoreError
from .store.storage import is_disk_full

log = logging.getLogger("threadline.vector_stores")


def day_s() -> int:
    """Seconds in a 'day' of an expiry policy; THREADLINE_EXPIRY_DAY_SECONDS shortens it for tests."""
    return int(os.environ.get("THREADLINE_EXPIRY_DAY_SECONDS", "86400"))


THREAD_STORE_EXPIRY_DAYS = 7
DISK_FULL_RETRY_S = 10.0
GROUP_FILES = 16  # files ingested together, so small files share embedding batches


def chunking_object(strategy: Any, auto: dict[str, int]) -> dict[str, Any]:
    """The strategy as reported on a vector-store file: `auto` is reported with the sizes actually used."""
    if strategy is None or getattr(strategy, "type", strategy) == "auto" or strategy == {"type": "auto"}:
        return {"type": "static", "static": dict(auto)}
    if isinstance(strategy, dict):
        return strategy
    return {"type": "static", "static": strategy.static.model_dump()}


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
        "file_counts": {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0, "total": 0},
        "status": "completed",
        "expires_after": expires_after,
        "expires_at": ts + expires_after["days"] * day_s() if expires_after else None,
        "last_active_at": ts,
        "metadata": metadata or {},
    }
    if owner:
        obj["_owner"] = owner
    return obj


def insert_store(conn: sa.Connection, obj: dict[str, Any]) -> None:
    Store.insert(conn, schema.vector_stores, obj, expires_at=obj["expires_at"])


def file_object(vs_id: str, file_id: str, chunking: dict, attributes: dict | None, batch_id: str | None = None) -> dict:
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


def attach_file(
    conn: sa.Connection, vs_id: str, file_id: str, chunking: dict, attributes: dict | None, batch_id: str | None = None
) -> dict[str, Any]:
    """Add (or re-add) a file to a store in `in_progress`; the Ingestor picks it up after commit."""
    t = schema.vector_store_files
    obj = file_object(vs_id, file_id, chunking, attributes)
    existing = conn.execute(sa.select(t.c.seq).where(t.c.vector_store_id == vs_id, t.c.file_id == file_id)).scalar()
    if existing is not None:
        conn.execute(
            t.update()
            .where(t.c.seq == existing)
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
            t.insert().values(
                vector_store_id=vs_id,
                file_id=file_id,
                batch_id=batch_id,
                status="in_progress",
                created_at=obj["created_at"],
                data=dumps(obj),
            )
        )
    return obj


def counts(conn: sa.Connection, where: sa.ColumnElement[bool]) -> dict[str, int]:
    t = schema.vector_store_files
    out = {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0, "total": 0}
    for status, n in conn.execute(sa.select(t.c.status, sa.func.count()).where(where).group_by(t.c.status)):
        out[status] = n
        out["total"] += n
    return out


def present_store(conn: sa.Connection, obj: dict[str, Any]) -> dict[str, Any]:
    t = schema.vector_store_files
    obj = {k: v for k, v in obj.items() if not k.startswith("_") and not (k == "expires_after" and v is None)}
    obj["file_counts"] = counts(conn, t.c.vector_store_id == obj["id"])
    usage = 0
    for raw in conn.execute(
        sa.select(t.c.data).where(t.c.vector_store_id == obj["id"], t.c.status == "completed")
    ).scalars():
        usage += loads(raw)["usage_bytes"]
    obj["usage_bytes"] = usage
    if obj.get("expires_at") and now() >= obj["expires_at"]:
        obj["status"] = "expired"
    else:
        obj["status"] = "in_progress" if obj["file_counts"]["in_progress"] else "completed"
    return obj


def present_batch(conn: sa.Connection, batch: dict[str, Any]) -> dict[str, Any]:
    c = counts(conn, schema.vector_store_files.c.batch_id == batch["id"])
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
        obj = Store.fetch(conn, schema.vector_stores, vs_id, lock=True)
        if obj is None:
            continue
        obj["last_active_at"] = now()
        if obj.get("expires_after") and not (obj.get("expires_at") and now() >= obj["expires_at"]):
            obj["expires_at"] = obj["last_active_at"] + obj["expires_after"]["days"] * day_s()
        Store.update(conn, schema.vector_stores, obj, expires_at=obj["expires_at"])


def is_expired(obj: dict[str, Any]) -> bool:
    return bool(obj.get("expires_at")) and now() >= obj["expires_at"]


class Ingestor:
    """Background ingestion of vector-store files with bounded concurrency."""

    def __init__(self, runtime: Any, concurrency: int = 2, poll_s: float = 0.5) -> None:
        self.rt = runtime
        self.concurrency = concurrency
        self.poll_s = poll_s
        self.active: set[tuple[str, str]] = set()
        self._wake = asyncio.Event()
        self._sem = asyncio.Semaphore(concurrency)
        self._task: asyncio.Task | None = None
        self._renew_task: asyncio.Task | None = None
        self._jobs: set[asyncio.Task] = set()

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop())
        self._renew_task = asyncio.create_task(self._renew_forever())

    async def stop(self) -> None:
        tasks = [t for t in [self._task, self._renew_task, *self._jobs] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _unclaimed(self, ts: float) -> sa.ColumnElement[bool]:
        t = schema.vector_store_files
        return (t.c.status == "in_progress") & sa.or_(
            t.c.claim_owner.is_(None), t.c.claim_until.is_(None), t.c.claim_until < ts
        )

    def _pending(self) -> list[tuple[str, str]]:
        """Claim the files waiting for ingestion that no other process is ingesting (oldest first); they are this
        process's until their claim runs out (renewed every third of the lease while the work goes on)."""
        t = schema.vector_store_files
        ts = self.rt.clock.now()
        with self.rt.store.read() as conn:  # the common case, nothing to do, costs no write transaction
            if conn.execute(sa.select(t.c.seq).where(self._unclaimed(ts)).limit(1)).first() is None:
                return []
        query = (
            sa.select(t.c.seq, t.c.vector_store_id, t.c.file_id)
            .where(self._unclaimed(ts))
            .order_by(t.c.seq)
            .limit(GROUP_FILES * self.concurrency)
        )
        if self.rt.store.backend == "postgres":
            query = query.with_for_update(skip_locked=True)
        with self.rt.store.write() as conn:
            rows = conn.execute(query).all()
            if rows:
                conn.execute(
                    t.update()
                    .where(t.c.seq.in_([r[0] for r in rows]))
                    .values(claim_owner=OWNER, claim_until=ts + self.rt.settings.run_lease_s)
                )
        return [(r[1], r[2]) for r in rows]

    def _unclaim(self, group: list[tuple[str, str]]) -> None:
        t = schema.vector_store_files
        with self.rt.store.write() as conn:
            for vs_id, file_id in group:
                conn.execute(
                    t.update()
                    .where(t.c.vector_store_id == vs_id, t.c.file_id == file_id, t.c.claim_owner == OWNER)
                    .values(claim_owner=None, claim_until=None)
                )

    def _renew(self) -> None:
        t = schema.vector_store_files
        until = self.rt.clock.now() + self.rt.settings.run_lease_s
        with self.rt.store.write() as conn:
            conn.execute(
                t.update().where(t.c.claim_owner == OWNER, t.c.status == "in_progress").values(claim_until=until)
            )

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.rt.settings.run_lease_s / 3)
            if not self.active:
                continue
            try:
                await asyncio.to_thread(self._renew)
            except Exception:  # retried at the next beat; the claim is generous
                log.warning("renewing ingestion claims failed", exc_info=True)

    async def _loop(self) -> None:
        while True:
            try:
                pending = [key for key in await asyncio.to_thread(self._pending) if key not in self.active]
                for i in range(0, len(pending), GROUP_FILES):
                    group = pending[i : i + GROUP_FILES]
                    self.active.update(group)
                    job = asyncio.create_task(self._ingest(group))
                    self._jobs.add(job)
                    job.add_done_callback(self._jobs.discard)
            except Exception:
                log.exception("ingestion scan failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)

    async def _ingest(self, group: list[tuple[str, str]]) -> None:
        try:
            async with self._sem:
                await asyncio.to_thread(self.ingest_now, group)
        except Exception as exc:
            if is_disk_full(exc) or isinstance(exc, BlobStoreError):
                # Not the file's fault: leave it in_progress and try again once deletes have made room or the
                # file storage (an S3 bucket) answers again.
                log.warning("ingesting %d file(s) paused: storage full or unavailable: %s", len(group), exc)
                await asyncio.sleep(DISK_FULL_RETRY_S)
                return
            log.exception("ingesting %d file(s) failed", len(group))
            error = {"code": "server_error", "message": "Internal error while indexing the file."}
            for vs_id, file_id in group:
                await asyncio.to_thread(self._finish, vs_id, file_id, "failed", 0, error)
        finally:
            try:
                await asyncio.to_thread(self._unclaim, group)
            except Exception:  # the claims run out by themselves
                log.warning("releasing ingestion claims failed", exc_info=True)
            self.active.difference_update(group)

    def _load(self, vs_id: str, file_id: str) -> tuple[dict, str, bytes] | None:
        t = schema.vector_store_files
        with self.rt.store.read() as conn:
            raw = conn.execute(
                sa.select(t.c.data).where(
                    t.c.vector_store_id == vs_id, t.c.file_id == file_id, t.c.status == "in_progress"
                )
            ).scalar()
            file_row = conn.execute(
                sa.select(schema.files.c.data, schema.files.c.blob_key).where(schema.files.c.id == file_id)
            ).first()
        if raw is None:
            return None
        if file_row is None:
            self._finish(vs_id, file_id, "failed", 0, {"code": "invalid_file", "message": "The file was deleted."})
            return None
        with self.rt.blobs.open(file_row[1]) as f:
            return loads(raw), loads(file_row[0])["filename"], f.read()

    def ingest_now(self, group: list[tuple[str, str]]) -> None:
        """Parse each file, then chunk, embed and index the whole group at once (embedding in large batches)."""
        from .retrieval.parse import InvalidFile, UnsupportedFile, extract_text

        ready = []
        for vs_id, file_id in group:
            loaded = self._load(vs_id, file_id)
            if loaded is None:
                continue
            vsf, filename, data = loaded
            log.info("ingesting %s into %s", file_id, vs_id)
            try:
                text = extract_text(data, filename)
            except UnsupportedFile as exc:
                self._finish(vs_id, file_id, "failed", 0, {"code": "unsupported_file", "message": exc.message})
                continue
            except InvalidFile as exc:
                self._finish(vs_id, file_id, "failed", 0, {"code": "invalid_file", "message": exc.message})
                continue
            ready.append((vs_id, file_id, text, vsf["chunking_strategy"], vsf.get("attributes")))
        usages = self.rt.retrieval.index_files(ready) if ready else []
        for (vs_id, file_id, *_), usage in zip(ready, usages, strict=True):
            self._finish(vs_id, file_id, "completed", usage, None)

    def _finish(self, vs_id: str, file_id: str, status: str, usage: int, error: dict | None) -> None:
        t = schema.vector_store_files
        with self.rt.store.write() as conn:
            row = conn.execute(
                sa.select(t.c.seq, t.c.data)
                .where(t.c.vector_store_id == vs_id, t.c.file_id == file_id)
                .with_for_update()
            ).first()
            if row is None:
                return
            obj = loads(row[1])
            if obj["status"] != "in_progress":
                return  # cancelled or removed meanwhile
            obj.update(status=status, usage_bytes=usage, last_error=error)
            conn.execute(t.update().where(t.c.seq == row[0]).values(status=status, data=dumps(obj)))
        if status != "completed":
            self.rt.retrieval.delete_file(vs_id, file_id)
