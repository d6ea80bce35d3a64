"""The background ingestion of vector-store files (the stores themselves: services/vector_stores.py).

Ingestion never runs in the request: attaching a file writes a `vector_store_files` row in `in_progress`, and the
Ingestor (bounded concurrency, CPU work in threads) parses, chunks, embeds and indexes it, then marks it
`completed` or `failed` with `last_error`. Counts and statuses are computed from those rows on every read, so
they are always true. Several server processes may ingest: each claims the rows it takes (claim_owner /
claim_until, FOR UPDATE SKIP LOCKED on PostgreSQL, renewed while it works), so no file is embedded twice; the
claim of a process that died runs out (or the sweeper frees it at once, engine.sweeper) and another process takes
the file. Rows still `in_progress` after a restart are picked up again (indexing is idempotent). Files are
ingested in groups of one project, acting for it (`tenancy.current_project`): the File read and the embedding
usage recorded are that project's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from .engine.executor import OWNER
from .store import files
from .store import usage as usage_records
from .store import vector_stores as repo
from .store.blobs_s3 import BlobStoreError
from .store.storage import is_disk_full
from .tenancy import current_project

if TYPE_CHECKING:
    from .services.deps import Deps

log = logging.getLogger("threadline.vector_stores")


DISK_FULL_RETRY_S = 10.0
GROUP_FILES = 16  # files ingested together, so small files share embedding batches


class Ingestor:
    """Background ingestion of vector-store files with bounded concurrency."""

    def __init__(self, runtime: Deps, concurrency: int = 2, poll_s: float = 0.5) -> None:
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

    def _pending(self) -> list[tuple[str, str, str]]:
        """Claim the files waiting for ingestion that no other process is ingesting (oldest first); they are this
        process's until their claim runs out (renewed every third of the lease while the work goes on). (store id,
        file id, project id) of each."""
        ts = self.rt.clock.now()
        with self.rt.store.read() as conn:  # the common case, nothing to do, costs no write transaction
            if not repo.any_claimable(conn, ts):
                return []
        until = ts + self.rt.settings.run_lease_s
        skip_locked = self.rt.store.backend == "postgres"
        with self.rt.store.write() as conn:
            return repo.claim_pending(conn, OWNER, ts, until, GROUP_FILES * self.concurrency, skip_locked=skip_locked)

    def _unclaim(self, group: list[tuple[str, str]]) -> None:
        with self.rt.store.write() as conn:
            repo.unclaim(conn, OWNER, group)

    def _renew(self) -> None:
        until = self.rt.clock.now() + self.rt.settings.run_lease_s
        with self.rt.store.write() as conn:
            repo.renew_claims(conn, OWNER, until)

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
                by_project: dict[str, list[tuple[str, str]]] = {}
                for vs_id, file_id, project in await asyncio.to_thread(self._pending):
                    if (vs_id, file_id) not in self.active:
                        by_project.setdefault(project, []).append((vs_id, file_id))
                for project, pending in by_project.items():
                    for i in range(0, len(pending), GROUP_FILES):
                        group = pending[i : i + GROUP_FILES]
                        self.active.update(group)
                        job = asyncio.create_task(self._ingest(project, group))
                        self._jobs.add(job)
                        job.add_done_callback(self._jobs.discard)
            except Exception:
                log.exception("ingestion scan failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)

    async def _ingest(self, project: str, group: list[tuple[str, str]]) -> None:
        current_project.set(project)  # this task's own context: what it reads and records is the project's
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
        with self.rt.store.read() as conn:
            vsf = repo.get_pending_file(conn, vs_id, file_id)
            stored = files.with_blob_keys(conn, [file_id]).get(file_id)
        if vsf is None:
            return None
        if stored is None:
            self._finish(vs_id, file_id, "failed", 0, {"code": "invalid_file", "message": "The file was deleted."})
            return None
        obj, blob_key = stored
        with self.rt.blobs.open(blob_key) as f:
            return vsf, obj["filename"], f.read()

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
        tokens: list[int] = []
        usages = self.rt.retrieval.index_files(ready, tokens) if ready else []
        for (vs_id, file_id, *_), usage, embedded in zip(ready, usages, tokens, strict=True):
            self._finish(vs_id, file_id, "completed", usage, None, embedded)

    def _finish(self, vs_id: str, file_id: str, status: str, usage: int, error: dict | None, embedded: int = 0) -> None:
        with self.rt.store.write() as conn:
            if not repo.finish_file(conn, vs_id, file_id, status, usage, error):
                return  # cancelled or removed meanwhile
            if status == "completed":  # usage: the tokens of the file's chunks sent to the embedder
                usage_records.record(
                    conn,
                    "embedding",
                    self.rt.clock.now(),
                    model=self.rt.retrieval.embedder.model_name,
                    vector_store_id=vs_id,
                    input_tokens=embedded,
                    quantity=1,
                )
        if status != "completed":
            self.rt.retrieval.delete_file(vs_id, file_id)
