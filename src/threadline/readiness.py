"""The readiness check behind GET /health/ready: can this process serve requests right now?

Required (any failure answers 503): the database answers, its schema is at the newest migration, and the blob
store takes a write. Reported without failing: the code_interpreter sandbox and the embedding model, which only
some requests need.
"""

from __future__ import annotations

import functools
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa

if TYPE_CHECKING:
    from .file_search import RetrievalService
    from .sandbox import Sandbox
    from .store import BlobStore, Store


class ReadinessParts(Protocol):
    """What the readiness check looks at (the Runtime has these)."""

    store: Store
    blobs: BlobStore
    sandbox: Sandbox
    retrieval: RetrievalService


@functools.cache
def head_revision() -> str | None:
    """The newest migration this code ships (read once from the migration scripts)."""
    from alembic.script import ScriptDirectory

    from .store.migrate import _config

    return ScriptDirectory.from_config(_config()).get_current_head()


def _check(fn: Any) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        detail = fn()
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    out = {"ok": True, "latency_ms": round((time.perf_counter() - start) * 1000, 1)}
    if detail:
        out.update(detail)
    return out


def readiness(runtime: ReadinessParts) -> dict[str, Any]:
    """{"status": "ready"|"not_ready", "checks": {...}}; each check has `ok` and, when it failed, `error`."""
    from .store.migrate import current

    def database() -> None:
        path = runtime.store.engine.url.database if runtime.store.backend == "sqlite" else None
        # pooled connections keep a moved or deleted SQLite file open: writes would go to an unreachable inode
        if path and path != ":memory:" and not Path(path).is_file():
            raise FileNotFoundError(f"the SQLite database file {path} is missing")
        with runtime.store.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def migrations() -> dict[str, Any]:
        have, want = current(runtime.store.engine), head_revision()
        if have != want:
            raise RuntimeError(f"schema at revision {have}, this server needs {want} (run `threadline migrate`)")
        return {"revision": have}

    def blobs() -> None:
        key = f"ready-{secrets.token_hex(8)}"  # an orphan left by a crash here is swept like any other
        runtime.blobs.put_bytes(key, b"ok")
        runtime.blobs.delete(key)

    checks = {"database": _check(database)}
    checks["migrations"] = _check(migrations) if checks["database"]["ok"] else {"ok": False, "error": "no database"}
    checks["blob_store"] = _check(blobs)
    ok = all(c["ok"] for c in checks.values())
    status = runtime.sandbox.last_status  # the last probe's answer; readiness never starts a sandbox
    optional = {
        "code_interpreter": {"state": "unknown"}
        if status is None
        else {"state": "available" if status[0] else "unavailable", **({} if status[0] else {"reason": status[1]})},
        "embedder": {"state": "loaded" if runtime.retrieval.embedder_loaded else "not_loaded"},
    }
    optional["code_interpreter"].update(runtime.sandbox.stats())
    return {"status": "ready" if ok else "not_ready", "checks": checks, "optional": optional}
