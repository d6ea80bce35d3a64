"""Which lease owners (server processes) are alive, and file locks for one-machine coordination.

A lease (`runs.lease_owner` / `lease_until`) runs out on its own when its owner stops heartbeating, but a process
that was killed is known to be gone much sooner: every process holds a lock that the operating system (SQLite:
an flock on a file next to the database) or PostgreSQL (a session advisory lock, released when the connection
drops) frees the moment the process dies. The sweeper treats the leases of owners without their lock as run out,
so a server restarted after a crash recovers its old runs at once instead of after the lease time.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa

log = logging.getLogger("threadline.engine")

# Advisory lock keys (two int4 form): (namespace, key). Owners: (OWNER_NS, crc32(owner)).
LOCK_NS = 0x746C  # "tl"
MIGRATE_KEY = 1
SWEEPER_KEY = 2
OWNER_NS = 0x746D


def owner_key(owner: str) -> int:
    """The signed int4 advisory-lock key of `owner` (crc32 of its name)."""
    key = zlib.crc32(owner.encode())
    return key - 2**32 if key >= 2**31 else key


class Liveness(Protocol):
    def hold(self) -> None:
        """Announce this process as alive (before it takes any lease)."""
        ...

    def release(self) -> None:
        """Stop announcing (at shutdown)."""
        ...

    def dead(self, owners: Iterable[str]) -> set[str]:
        """Those of `owners` whose process is known to be gone."""
        ...


class FileLock:
    """An exclusive flock on `path`, released when closed or when the process dies (however it dies)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock; with `blocking=False` return False at once if another process holds it."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path` for the block (waits for other processes holding it)."""
    lock = FileLock(path)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def sqlite_dir(engine: sa.Engine) -> Path | None:
    """The directory of an SQLite database file (None for an in-memory database)."""
    database = engine.url.database
    if not database or database == ":memory:":
        return None
    return Path(database).resolve().parent


class FileLiveness:
    """SQLite (every process on one machine): each process holds an flock on `<dir>/<owner>.lock`."""

    def __init__(self, directory: Path, owner: str) -> None:
        self.dir = directory
        self.owner = owner
        self._lock: FileLock | None = None

    def _path(self, owner: str) -> Path:
        return self.dir / f"{owner.replace('/', '_')}.lock"

    def hold(self) -> None:
        # Locked under a temporary name, then renamed: a sweeper never sees the file unlocked and deletes it.
        tmp = self.dir / f".{self.owner.replace('/', '_')}.{os.getpid()}.tmp"
        lock = FileLock(tmp)
        lock.acquire()
        os.replace(tmp, self._path(self.owner))
        self._lock = lock

    def release(self) -> None:
        if self._lock is not None:
            with contextlib.suppress(OSError):
                self._path(self.owner).unlink()
            self._lock.release()
            self._lock = None

    def dead(self, owners: Iterable[str]) -> set[str]:
        gone = set()
        for owner in owners:
            path = self._path(owner)
            if not path.exists():
                gone.add(owner)
                continue
            probe = FileLock(path)
            if probe.acquire(blocking=False):
                gone.add(owner)
                with contextlib.suppress(OSError):
                    path.unlink()
                probe.release()
        return gone


class PostgresLiveness:
    """PostgreSQL: each process holds the session advisory lock (OWNER_NS, crc32(owner)) on a connection of its
    own; the lock is freed when that connection ends, which a killed process's does at once."""

    def __init__(self, engine: sa.Engine, owner: str) -> None:
        self.engine = engine
        self.owner = owner
        self._raw: Any = None

    def hold(self) -> None:
        raw = self.engine.raw_connection()
        conn = raw.driver_connection
        conn.autocommit = True
        held = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (OWNER_NS, owner_key(self.owner))).fetchone()[0]
        if not held:  # another session has the key (a name colliding in crc32): this owner just looks alive
            log.warning("the liveness lock of %s is held elsewhere", self.owner)
        self._raw = raw

    def release(self) -> None:
        if self._raw is not None:
            with contextlib.suppress(Exception):
                self._raw.invalidate()  # closes the connection: the lock goes with it
            self._raw = None

    def alive_again(self) -> None:
        """Re-take the lock if its connection broke (called by the sweep loop)."""
        raw = self._raw
        try:
            if raw is not None:
                raw.driver_connection.execute("SELECT 1")
                return
        except Exception:
            log.warning("the liveness connection broke; reconnecting", exc_info=True)
            self.release()
        self.hold()

    def dead(self, owners: Iterable[str]) -> set[str]:
        owners = set(owners)
        if not owners:
            return set()
        query = sa.text(
            "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND classid = :ns AND objsubid = 2 AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        with self.engine.connect() as conn:
            held = {int(x) for x in conn.execute(query, {"ns": OWNER_NS}).scalars()}
        return {o for o in owners if owner_key(o) % 2**32 not in held}


def liveness(engine: sa.Engine, owner: str) -> Liveness | None:
    """The liveness registry for this database (None for an in-memory SQLite database: one process only)."""
    if engine.dialect.name == "postgresql":
        return PostgresLiveness(engine, owner)
    directory = sqlite_dir(engine)
    if directory is None:
        return None
    return FileLiveness(directory / "threadline-owners", owner)
