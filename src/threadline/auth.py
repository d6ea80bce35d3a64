"""API-key checking. With no keys configured the server is open (and says so at start-up).

Keys come from THREADLINE_API_KEYS (fixed for the process) and from the `api_keys` table (SHA-256 hashes, added
and revoked with `threadline add-key` / `revoke-key`, possibly while servers run). A change takes effect at once in
every server process sharing the database:

- SQLite: every request looks its key up in the table (one indexed query on a connection kept for it, ~30 µs).
- PostgreSQL, where that query is a network round trip: key changes are announced with NOTIFY in the transaction
  that makes them; each server LISTENs on its own connection and keeps the keys it has verified in memory until
  the next announcement. While that connection is down, requests fall back to the per-request lookup.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import hashlib
import hmac
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from .store import Store, now, schema

log = logging.getLogger("threadline.auth")

CHANNEL = "threadline_api_keys"

# The id of the key that made the current request (key_<sha256 prefix>; never the key), set by the middleware and
# recorded with the usage the request causes.
request_key_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_key_id", default=None)


class Verdict(enum.Enum):
    OPEN = "open"  # no keys configured anywhere: every request is let in
    OK = "ok"
    MISSING = "missing"  # keys are configured but the request carries none
    INVALID = "invalid"


@dataclass
class StoredKey:
    id: int
    name: str | None
    created_at: int
    hash_prefix: str  # first 12 hex digits of the SHA-256, to tell keys apart without revealing them


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id(key: str) -> str:
    """The public id of a key: `key_` + the first 16 hex digits of its SHA-256 (tells keys apart, reveals nothing)."""
    return "key_" + hash_key(key)[:16]


class AdminVerdict(enum.Enum):
    OK = "ok"  # an admin key, or no admin and no API key configured anywhere (an open server)
    MISSING = "missing"
    NOT_ADMIN = "not_admin"  # a valid API key that is not an admin key
    INVALID = "invalid"


@dataclass
class _Cache:
    generation: int
    valid: set[str] = field(default_factory=set)  # digests verified as stored keys
    any_stored: bool | None = None


class KeyListener:
    """A thread LISTENing (PostgreSQL) for key changes; `generation` moves on each change and each reconnection."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.generation = 0
        self.live = False  # False: announcements may be missed, so nothing may be cached
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="threadline-key-listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            raw = None
            try:
                raw = self.store.engine.raw_connection()
                conn = raw.driver_connection
                conn.autocommit = True
                conn.execute(f"LISTEN {CHANNEL}")
                self.generation += 1
                self.live = True
                while not self._stop.is_set():
                    for _ in conn.notifies(timeout=1.0):
                        self.generation += 1
            except Exception:
                log.warning("listening for API key changes failed; retrying", exc_info=True)
            finally:
                self.live = False
                self.generation += 1
                if raw is not None:
                    with contextlib.suppress(Exception):
                        raw.invalidate()
            self._stop.wait(1.0)


class KeyChecker:
    """Checks request keys against THREADLINE_API_KEYS and, per request, the api_keys table."""

    def __init__(self, store: Store, env_keys: list[str], admin_keys: list[str] | None = None) -> None:
        self.store = store
        self.env_hashes = {hash_key(k) for k in env_keys}
        self.admin_hashes = {hash_key(k) for k in admin_keys or []}
        self._lock = threading.Lock()
        self._raw: Any = None  # DBAPI connection dedicated to lookups (autocommit)
        self._param = "%s" if store.backend == "postgres" else "?"
        self._listener = KeyListener(store) if store.backend == "postgres" else None
        self._cache = _Cache(generation=-1)

    def start(self) -> None:
        """Start following key changes made elsewhere (PostgreSQL); until then every request looks its key up."""
        if self._listener is not None:
            self._listener.start()

    # -- per request ----------------------------------------------------------------------------------------------

    def verify(self, key: str | None) -> Verdict:
        """The verdict for a request carrying `key` (None: no key). Raises the driver's error if the database
        cannot be reached twice in a row."""
        digest = hash_key(key) if key else None
        if digest is not None and any(hmac.compare_digest(digest, h) for h in self.env_hashes):
            return Verdict.OK
        cache = self._current_cache()
        if cache is not None:
            if digest is not None and digest in cache.valid:
                return Verdict.OK
            if cache.any_stored is False or (digest is None and cache.any_stored is not None):
                return self._verdict(key, False, cache.any_stored)
        stored, any_stored = self._lookup(digest)
        if cache is not None and self._current_cache() is cache:  # no change announced during the lookup
            cache.any_stored = any_stored
            if stored and digest is not None:
                cache.valid.add(digest)
        return self._verdict(key, stored, any_stored)

    def verify_admin(self, key: str | None) -> AdminVerdict:
        """The verdict for a `/v1/organization/*` request carrying `key`: admin keys come from THREADLINE_ADMIN_KEYS
        and the `admin_api_keys` table (looked up per request, so a revoked key is refused at once everywhere)."""
        digest = hash_key(key) if key else None
        if digest is not None and any(hmac.compare_digest(digest, h) for h in self.admin_hashes):
            return AdminVerdict.OK
        t = schema.admin_api_keys
        with self.store.read() as conn:
            any_admin = bool(self.admin_hashes) or conn.execute(sa.select(t.c.seq).limit(1)).first() is not None
            if digest is not None:
                row = conn.execute(sa.select(t.c.expires_at).where(t.c.key_hash == digest)).first()
                if row is not None and (row[0] is None or row[0] > now()):
                    return AdminVerdict.OK
        verdict = self.verify(key)
        if not any_admin and verdict is Verdict.OPEN:
            return AdminVerdict.OK
        if key is None:
            return AdminVerdict.MISSING
        return AdminVerdict.NOT_ADMIN if verdict is Verdict.OK else AdminVerdict.INVALID

    def _current_cache(self) -> _Cache | None:
        listener = self._listener
        if listener is None or not listener.live:
            return None
        if self._cache.generation != listener.generation:
            self._cache = _Cache(generation=listener.generation)
        return self._cache

    def _verdict(self, key: str | None, stored: bool, any_stored: bool) -> Verdict:
        if stored:
            return Verdict.OK
        if not any_stored and not self.env_hashes:
            return Verdict.OPEN
        return Verdict.MISSING if key is None else Verdict.INVALID

    def _lookup(self, digest: str | None) -> tuple[bool, bool]:
        """(digest is a stored key, any key is stored): one query; the unique index on key_hash serves it."""
        p = self._param
        sql = (
            f"SELECT EXISTS (SELECT 1 FROM api_keys WHERE key_hash = {p}), EXISTS (SELECT 1 FROM api_keys)"
            if digest is not None
            else "SELECT 0, EXISTS (SELECT 1 FROM api_keys)"
        )
        args = (digest,) if digest is not None else ()
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._raw is None:
                        self._raw = self._connect()
                    cur = self._raw.cursor()
                    try:
                        cur.execute(sql, args)
                        row = cur.fetchone()
                    finally:
                        cur.close()
                    return bool(row[0]), bool(row[1])
                except Exception:
                    self._close_raw()  # e.g. the database restarted: reconnect once
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    def _connect(self) -> Any:
        raw = self.store.engine.raw_connection()
        if self.store.backend == "postgres":
            raw.driver_connection.autocommit = True  # no transaction (and no snapshot) held between requests
        return raw

    def _close_raw(self) -> None:
        if self._raw is not None:
            with contextlib.suppress(Exception):  # already broken
                self._raw.invalidate()
            self._raw = None

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()
        with self._lock:
            if self._raw is not None:
                self._raw.close()
                self._raw = None

    # -- at start-up and from the CLI ---------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """Whether any key is configured right now (env or table)."""
        if self.env_hashes:
            return True
        with self.store.read() as conn:
            return conn.execute(sa.select(schema.api_keys.c.seq).limit(1)).first() is not None

    def add(self, key: str, name: str | None = None) -> bool:
        """Store a key (hashed). False if it is stored already."""
        t = schema.api_keys
        with self.store.write() as conn:
            if conn.execute(sa.select(t.c.seq).where(t.c.key_hash == hash_key(key))).first() is not None:
                return False
            conn.execute(t.insert().values(key_hash=hash_key(key), name=name, created_at=now()))
            self._announce(conn)
        return True

    def _announce(self, conn: sa.Connection) -> None:
        """Tell the servers following changes (delivered at commit)."""
        if self.store.backend == "postgres":
            conn.execute(sa.text(f"NOTIFY {CHANNEL}"))

    def list(self) -> list[StoredKey]:
        t = schema.api_keys
        with self.store.read() as conn:
            rows = conn.execute(sa.select(t.c.seq, t.c.name, t.c.created_at, t.c.key_hash).order_by(t.c.seq)).all()
        return [StoredKey(r[0], r[1], r[2], r[3][:12]) for r in rows]

    def revoke(self, *, key: str | None = None, key_id: int | None = None, name: str | None = None) -> int:
        """Delete stored keys matching the key itself, its id or its name. Returns how many were deleted."""
        t = schema.api_keys
        if key is not None:
            cond = t.c.key_hash == hash_key(key)
        elif key_id is not None:
            cond = t.c.seq == key_id
        elif name is not None:
            cond = t.c.name == name
        else:
            raise ValueError("revoke needs a key, an id or a name")
        with self.store.write() as conn:
            count = conn.execute(t.delete().where(cond)).rowcount
            self._announce(conn)
            return count
