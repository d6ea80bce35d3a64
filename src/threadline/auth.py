"""API-key checking, and the project a request acts in.

Keys come from THREADLINE_API_KEYS (fixed for the process; the default project), the legacy `api_keys` table
(`threadline add-key`; the default project), `project_api_keys` (service-account and user keys of one project;
store/projects.py) and admin keys (THREADLINE_ADMIN_KEYS and `admin_api_keys`: `/v1/organization/*`, and any project
through the `OpenAI-Project` header). A change takes effect at once in every server process sharing the database:

- SQLite: every request looks its key up (one query on a connection kept for it, over the unique key_hash indexes).
- PostgreSQL, where that query is a network round trip: key changes (a key added or deleted, a service account
  deleted, a project archived) are announced with NOTIFY in the transaction that makes them; each server LISTENs on
  its own connection and keeps the keys it has verified in memory until the next announcement. While that
  connection is down, requests fall back to the per-request lookup.
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
from .store.projects import KEY_CHANNEL, announce_key_change, local_key_changes, touch_keys
from .tenancy import DEFAULT_PROJECT_ID

log = logging.getLogger("threadline.auth")

CHANNEL = KEY_CHANNEL
# How stale a key's `last_used_at` may be, in seconds: one write per key per minute, not one per request.
TOUCH_EVERY_S = 60

# The id of the key that made the current request (key_<sha256 prefix>; never the key), set by the middleware and
# recorded with the usage the request causes.
request_key_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_key_id", default=None)


class Verdict(enum.Enum):
    OPEN = "open"  # no keys configured anywhere: every request is let in
    OK = "ok"
    MISSING = "missing"  # keys are configured but the request carries none
    INVALID = "invalid"
    ARCHIVED = "archived"  # a key of an archived project


@dataclass(frozen=True)
class Access:
    """What a request's key allows: the verdict, the key's project (project, legacy and env keys; None for admin
    keys and open servers, which choose theirs with `OpenAI-Project`) and whether it is an admin key."""

    verdict: Verdict
    project_id: str | None = None
    admin: bool = False
    expires_at: int | None = None  # admin keys: when the key stops working (None: never)
    stored: bool = False  # a project or admin key of the tables (which keep its `last_used_at`)


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
    generation: tuple[int, int]  # (the listener's, this process's own key changes)
    valid: dict[str, Access] = field(default_factory=dict)  # digests verified as stored keys
    projects: dict[str, str | None] = field(default_factory=dict)  # project id -> its status (None: no project)
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
        self._cache = _Cache(generation=(-1, -1))
        self._touched: dict[str, int] = {}  # digest -> when this process last wrote its last_used_at

    def start(self) -> None:
        """Start following key changes made elsewhere (PostgreSQL); until then every request looks its key up."""
        if self._listener is not None:
            self._listener.start()

    # -- per request ----------------------------------------------------------------------------------------------

    def verify(self, key: str | None) -> Verdict:
        """The verdict for a request carrying `key` (None: no key). Raises the driver's error if the database
        cannot be reached twice in a row."""
        return self.resolve(key).verdict

    def resolve(self, key: str | None) -> Access:
        """What a request carrying `key` (None: no key) may do, and in which project. One indexed query, or none
        (THREADLINE_API_KEYS, THREADLINE_ADMIN_KEYS, or a key verified since the last announced change). Raises
        the driver's error if the database cannot be reached twice in a row."""
        digest = hash_key(key) if key else None
        if digest is not None:
            if any(hmac.compare_digest(digest, h) for h in self.env_hashes):
                return Access(Verdict.OK, DEFAULT_PROJECT_ID)
            if any(hmac.compare_digest(digest, h) for h in self.admin_hashes):
                return Access(Verdict.OK, None, admin=True)
        cache = self._current_cache()
        if cache is not None:
            if digest is not None and digest in cache.valid:
                return _unexpired(cache.valid[digest])
            if cache.any_stored is False or (digest is None and cache.any_stored is not None):
                return self._access(key, None, cache.any_stored)
        found, any_stored = self._lookup(digest)
        if cache is not None and self._current_cache() is cache:  # no change announced during the lookup
            cache.any_stored = any_stored
            if found is not None and digest is not None:
                cache.valid[digest] = found
        return self._access(key, found, any_stored)

    def used(self, key: str) -> bool:
        """Note that a stored project or admin key was just used. True when its `last_used_at` is due a write
        (then call `touch`): at most once per TOUCH_EVERY_S per key and process, so the hot path stays a read."""
        digest = hash_key(key)
        if digest in self.env_hashes or digest in self.admin_hashes:
            return False
        at = now()
        with self._lock:
            if at - self._touched.get(digest, -TOUCH_EVERY_S) < TOUCH_EVERY_S:
                return False
            if len(self._touched) > 100_000:
                self._touched.clear()
            self._touched[digest] = at
        return True

    def touch(self, key: str) -> None:
        """Write the key's `last_used_at` (now), unless another process did in the last TOUCH_EVERY_S."""
        with self.store.write() as conn:
            touch_keys(conn, [hash_key(key)], now(), TOUCH_EVERY_S)

    def project_status(self, project_id: str) -> str | None:
        """`active` or `archived` for an existing project, None for an unknown id: what an admin key's (or an open
        server's) `OpenAI-Project` header may name. Cached on PostgreSQL like the keys (archiving announces)."""
        cache = self._current_cache()
        if cache is not None and project_id in cache.projects:
            return cache.projects[project_id]
        rows = self._query(f"SELECT status FROM projects WHERE id = {self._param}", (project_id,))
        status = rows[0][0] if rows else None
        if cache is not None and self._current_cache() is cache and len(cache.projects) < 10_000:
            cache.projects[project_id] = status
        return status

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
        if verdict is Verdict.ARCHIVED:
            verdict = Verdict.OK  # still a project key: the permission error says more than "incorrect key"
        if not any_admin and verdict is Verdict.OPEN:
            return AdminVerdict.OK
        if key is None:
            return AdminVerdict.MISSING
        return AdminVerdict.NOT_ADMIN if verdict is Verdict.OK else AdminVerdict.INVALID

    def _current_cache(self) -> _Cache | None:
        listener = self._listener
        if listener is None or not listener.live:
            return None
        generation = (listener.generation, local_key_changes())
        if self._cache.generation != generation:
            self._cache = _Cache(generation=generation)
        return self._cache

    def _access(self, key: str | None, found: Access | None, any_stored: bool) -> Access:
        if found is not None:
            return _unexpired(found)
        if not any_stored and not self.env_hashes and not self.admin_hashes:
            return Access(Verdict.OPEN)
        return Access(Verdict.MISSING if key is None else Verdict.INVALID)

    def _lookup(self, digest: str | None) -> tuple[Access | None, bool]:
        """(what the stored key with this digest allows, or None; any key is stored, so the server is not open): one
        query over the unique key_hash indexes of the three key tables."""
        p = self._param
        anything = (
            "SELECT 'any', CAST(NULL AS VARCHAR(64)), CAST(NULL AS BIGINT) "
            "WHERE EXISTS (SELECT 1 FROM api_keys) OR EXISTS (SELECT 1 FROM project_api_keys) "
            "OR EXISTS (SELECT 1 FROM admin_api_keys)"
        )
        if digest is None:
            sql, args = anything, ()
        else:
            sql = (
                "SELECT 'legacy', CAST(NULL AS VARCHAR(64)), CAST(NULL AS BIGINT) FROM api_keys "
                f"WHERE key_hash = {p} "
                "UNION ALL SELECT 'project', k.project_id, p.archived_at FROM project_api_keys k "
                f"JOIN projects p ON p.id = k.project_id WHERE k.key_hash = {p} "
                f"UNION ALL SELECT 'admin', CAST(NULL AS VARCHAR(64)), expires_at FROM admin_api_keys "
                f"WHERE key_hash = {p} UNION ALL " + anything
            )
            args = (digest, digest, digest)
        rows = self._query(sql, args)
        found = None
        for kind, project, when in rows:
            if kind == "legacy":
                found = Access(Verdict.OK, DEFAULT_PROJECT_ID)
            elif kind == "project":
                found = Access(Verdict.OK if when is None else Verdict.ARCHIVED, project, stored=True)
            elif kind == "admin":
                found = Access(Verdict.OK, None, admin=True, expires_at=when, stored=True)
        return found, any(row[0] == "any" for row in rows)

    def _query(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._raw is None:
                        self._raw = self._connect()
                    cur = self._raw.cursor()
                    try:
                        cur.execute(sql, args)
                        return list(cur.fetchall())
                    finally:
                        cur.close()
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
        """Whether any key is configured right now (env, legacy, project or admin keys); without any, the server
        is open."""
        if self.env_hashes or self.admin_hashes:
            return True
        with self.store.read() as conn:
            return any(
                conn.execute(sa.select(t.c.seq).limit(1)).first() is not None
                for t in (schema.api_keys, schema.project_api_keys, schema.admin_api_keys)
            )

    def add(self, key: str, name: str | None = None) -> bool:
        """Store a key (hashed) of the default project, recorded in the audit log as the operator's
        `api_key.created`. False if it is stored already."""
        from .store import audit

        t = schema.api_keys
        with self.store.write() as conn:
            if conn.execute(sa.select(t.c.seq).where(t.c.key_hash == hash_key(key))).first() is not None:
                return False
            conn.execute(t.insert().values(key_hash=hash_key(key), name=name, created_at=now()))
            details = {"id": key_id(key), "data": {"scopes": ["api.all"]}}
            audit.record(conn, "api_key.created", project_id=DEFAULT_PROJECT_ID, actor=audit.CLI_ACTOR, details=details)
            self._announce(conn)
        return True

    def _announce(self, conn: sa.Connection) -> None:
        """Tell the servers following changes (delivered at commit)."""
        announce_key_change(conn)

    def list(self) -> list[StoredKey]:
        t = schema.api_keys
        with self.store.read() as conn:
            rows = conn.execute(sa.select(t.c.seq, t.c.name, t.c.created_at, t.c.key_hash).order_by(t.c.seq)).all()
        return [StoredKey(r[0], r[1], r[2], r[3][:12]) for r in rows]

    def revoke(self, *, key: str | None = None, key_id: int | None = None, name: str | None = None) -> int:
        """Delete stored keys matching the key itself, its id or its name, each recorded in the audit log as the
        operator's `api_key.deleted`. Returns how many were deleted."""
        t = schema.api_keys
        if key is not None:
            cond = t.c.key_hash == hash_key(key)
        elif key_id is not None:
            cond = t.c.seq == key_id
        elif name is not None:
            cond = t.c.name == name
        else:
            raise ValueError("revoke needs a key, an id or a name")
        from .store import audit

        with self.store.write() as conn:
            hashes = conn.execute(sa.select(t.c.key_hash).where(cond)).scalars().all()
            count = conn.execute(t.delete().where(cond)).rowcount
            for digest in hashes:
                details = {"id": "key_" + digest[:16]}
                audit.record(
                    conn, "api_key.deleted", project_id=DEFAULT_PROJECT_ID, actor=audit.CLI_ACTOR, details=details
                )
            self._announce(conn)
            return count


def _unexpired(access: Access) -> Access:
    if access.expires_at is not None and access.expires_at <= now():
        return Access(Verdict.INVALID)
    return access
