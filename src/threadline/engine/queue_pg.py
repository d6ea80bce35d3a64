"""The run queue on PostgreSQL: the `runs` rows themselves, for any number of processes on any number of machines.

A background run is queued by the transaction that creates it (`status = 'queued'`). When the creating process has
a run worker free, that transaction holds the run for it (lease_owner / lease_until on the queued row, for
`HOLD_S`) and the process executes it at once from its in-memory queue: no other process hears of it. Otherwise the
transaction sends `pg_notify('threadline_queue', 'run:<id>')`; every process LISTENs (store.listen.PgListener),
and an idle worker claims the oldest queued run nobody holds with `SELECT ... FOR UPDATE SKIP LOCKED` inside the
transaction that starts it, so concurrent workers never wait on each other and a run starts exactly once.
Notifying only when the creator is busy matters: every notification wakes a worker in every process, and all but
one of them would spend a write transaction finding nothing. A poll (every `poll_s`, only while a worker is
idle) catches what a missed notification (a reconnecting listener) or a lapsed hold would leave behind; the
sweeper notifies when it frees the holds of a process that died.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import sqlalchemy as sa

from ..store import executions
from ..store.listen import PgListener, notify
from .executor import OWNER
from .worker import TABLES, Entry, PollingQueue, kinds

CHANNEL = "threadline_queue"
POLL_S = 2.0
# How long a run stays reserved for the process that created it; its free worker claims it within milliseconds,
# and after this any process may take it (its poll finds it).
HOLD_S = 5


class PostgresRunQueue(PollingQueue):
    """Runs this process creates while a worker of its is free, in memory; the rest by NOTIFY-driven claims of
    queued rows, with a poll as the fallback."""

    def __init__(self, runtime: Any, listener: PgListener, poll_s: float = POLL_S, *, holds: bool = True) -> None:
        super().__init__(runtime, poll_s)
        self.listener = listener
        self.holds = holds  # this process executes background runs
        # Entries held in a creating transaction and not yet handed to a worker -> when to forget them (a
        # transaction that rolled back never hands its entry over).
        self._held: dict[Entry, float] = {}
        self._mine: set[Entry] = set()  # handed to a worker of this process: claim that very run
        self._lock = threading.Lock()
        listener.subscribe(CHANNEL, self._notified)
        listener.on_connect(lambda: self.wake_threadsafe(None))

    def _notified(self, payload: str) -> None:
        kind, _, item = payload.partition(":")
        self.wake_threadsafe((kind, item))

    def _free(self) -> int:
        """Workers waiting for work, minus the work already promised to them."""
        return self._idle() - self._queue.qsize() - len(self._held)

    def _reserve(self, entry: Entry) -> bool:
        now = time.monotonic()
        with self._lock:
            for old in [e for e, until in self._held.items() if until < now]:
                del self._held[old]
            if not self.listener.live or self._free() <= 0:
                return False
            self._held[entry] = now + HOLD_S
            return True

    def queued_in(self, conn: sa.Connection, entry: Entry) -> None:
        if self.holds and entry[0] in TABLES and self._reserve(entry):
            executions.hold(conn, TABLES[entry[0]], entry[1], OWNER, self.rt.clock.now() + HOLD_S)
        else:
            notify(conn, CHANNEL, f"{entry[0]}:{entry[1]}")

    async def put(self, entry: Entry) -> None:
        with self._lock:
            held = self._held.pop(entry, None) is not None
        if held:
            self._mine.add(entry)
            self._queue.put_nowait(entry)
        elif not self.listener.live:  # the notification may be lost: try it here
            self.wake(entry)

    def wake(self, entry: Entry | None) -> None:
        if self._free() > 0:
            self._queue.put_nowait(entry)
        else:
            self.missed = True

    def announce(self, conn: sa.Connection) -> None:
        """Inside a write transaction that made queued runs claimable by anyone (released holds): wake the cluster's
        idle workers when it commits."""
        notify(conn, CHANNEL, "run:")

    def claim(self, conn: sa.Connection, hint: Entry | None, ts: int) -> dict | None:
        if hint is not None and hint in self._mine:
            self._mine.discard(hint)
            obj = executions.lock_held(conn, TABLES[hint[0]], hint[1], OWNER, ts)
            if obj is not None:
                return obj
        # The oldest claimable execution of the kind that woke us (then of the other kind), whichever one woke us:
        # FIFO across the cluster; rows other workers are claiming right now are skipped, not waited for.
        for kind in kinds(hint[0] if hint is not None else None):
            obj = executions.lock_oldest_claimable(conn, TABLES[kind], ts)
            if obj is not None:
                return obj
        return None
