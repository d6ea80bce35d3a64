"""The sweeper: run expiry and recovery of executions whose process stopped, once per cluster.

Every process runs a Sweeper, but only the one holding the sweeper role sweeps (every `interval_s`): on
PostgreSQL the session advisory lock (LOCK_NS, SWEEPER_KEY) on a connection of its own, with time read from the
database clock (`now()`), so machines with skewed clocks agree; on SQLite an flock on a file next to the database
(every process is on that machine; the guarded updates would make concurrent sweeps harmless anyway). When the
holder dies its lock is freed and another process takes the role at its next tick.

A sweep finishes the runs whose lease ran out or whose owner is known to be dead (engine.owners): `in_progress`
becomes `failed`, `cancelling` becomes `cancelled`; it expires runs past `expires_at` no live executor drives;
and it releases what dead processes held: queued runs (SQLite holds the runs a process created for it) and
ingestion claims, which other processes then take.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import sqlalchemy as sa

from ..store import executions, schema, vector_stores
from .executor import OWNER
from .owners import LOCK_NS, SWEEPER_KEY, FileLock, Liveness, sqlite_dir

log = logging.getLogger("threadline.engine")

SWEEP_INTERVAL_S = 1.0


class _SqliteRole:
    def __init__(self, engine: sa.Engine) -> None:
        directory = sqlite_dir(engine)
        self.lock = FileLock(directory / "threadline-sweeper.lock") if directory else None

    def acquire(self) -> bool:
        return self.lock is None or self.lock.acquire(blocking=False)

    def now(self) -> float | None:
        return None  # the runtime's clock

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()


class _PostgresRole:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._raw: Any = None
        self.held = False

    def acquire(self) -> bool:
        try:
            if self._raw is None:
                self._raw = self.engine.raw_connection()
                self._raw.driver_connection.autocommit = True
            if not self.held:
                row = self._raw.driver_connection.execute(
                    "SELECT pg_try_advisory_lock(%s, %s)", (LOCK_NS, SWEEPER_KEY)
                ).fetchone()
                self.held = bool(row[0])
            return self.held
        except Exception:
            log.warning("the sweeper's connection broke", exc_info=True)
            self.release()
            return False

    def now(self) -> float | None:
        """The database clock, read on the role's connection (which also proves the lock is still held)."""
        try:
            return float(self._raw.driver_connection.execute("SELECT extract(epoch FROM now())").fetchone()[0])
        except Exception:
            log.warning("the sweeper's connection broke", exc_info=True)
            self.release()
            return None

    def release(self) -> None:
        if self._raw is not None:
            with contextlib.suppress(Exception):
                self._raw.invalidate()  # closing the session frees the advisory lock
        self._raw = None
        self.held = False


class Sweeper:
    """Expiry and lease recovery for the whole cluster, by whichever process holds the sweeper role."""

    def __init__(self, runtime: Any, workers: Any, liveness: Liveness | None, interval_s: float = SWEEP_INTERVAL_S):
        self.rt = runtime
        self.workers = workers
        self.liveness = liveness
        self.interval_s = interval_s
        engine = runtime.store.engine
        self.role = _PostgresRole(engine) if engine.dialect.name == "postgresql" else _SqliteRole(engine)
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Announce this process as alive, finish what an earlier server in this process left (its executions
        died with it), sweep once if the role is free, then sweep every `interval_s`."""
        if self.liveness is not None:
            await asyncio.to_thread(self.liveness.hold)
        await asyncio.to_thread(self.sweep, True)
        self._task = asyncio.create_task(self._forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.to_thread(self.role.release)
        if self.liveness is not None:
            await asyncio.to_thread(self.liveness.release)

    async def _forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await asyncio.to_thread(self.sweep)
            except Exception:
                log.exception("sweep failed")

    def sweep(self, first: bool = False) -> bool:
        """One pass; True if this process holds the role and swept. `first`: at start-up, when this process's own
        earlier executions (of a server stopped in this process) are orphans."""
        if self.liveness is not None and hasattr(self.liveness, "alive_again"):
            self.liveness.alive_again()
        own = {OWNER} if first else set()
        if not self.role.acquire():
            if own:
                self.workers.recover(dead_owners=own)
            return False
        db_now = self.role.now()
        if db_now is None and not isinstance(self.role, _SqliteRole):
            return False
        ts = int(db_now) if db_now is not None else self.rt.clock.now()
        dead = own | self._dead_owners(ts)
        self.workers.expire(ts=ts, dead_owners=dead)
        self.workers.recover(ts=ts, dead_owners=dead)
        if dead:
            self._release(dead)
        return True

    def _dead_owners(self, ts: int) -> set[str]:
        """Owners of leases and claims still running that belong to processes known to be gone."""
        if self.liveness is None:
            return set()
        with self.rt.store.read() as conn:
            owners = vector_stores.live_claim_owners(conn, ts)
            for table in (schema.runs, schema.responses):
                owners |= executions.live_lease_owners(conn, table, ts)
        owners.discard(OWNER)
        return self.liveness.dead(owners) if owners else set()

    def _release(self, dead: set[str]) -> None:
        """Queued runs and ingestion claims of dead processes become free for the others."""
        owners = list(dead)
        with self.rt.store.write() as conn:
            freed = sum(executions.release_holds(conn, t, owners) for t in (schema.runs, schema.responses))
            claims = vector_stores.release_claims(conn, owners)
            announce = getattr(self.rt.queue, "announce", None)
            if freed and announce is not None:  # other processes' idle workers take them now, not at their poll
                announce(conn)
        if freed or claims:
            log.warning(
                "released %d queued run(s) / response(s) and %d ingestion claim(s) of stopped processes", freed, claims
            )
