"""The run queue on PostgreSQL: the `runs` rows themselves, for any number of processes on any number of machines.

A background run is queued by the transaction that creates it (`status = 'queued'`), which also sends
`pg_notify('threadline_queue', 'run:<id>')`; every process LISTENs (store.listen.PgListener), and an idle worker
claims the oldest queued run with `SELECT ... FOR UPDATE SKIP LOCKED` inside the transaction that starts it, so
concurrent workers never wait on each other and a run starts exactly once. A poll (every `poll_s`, only while a
worker is idle) catches what a missed notification (a reconnecting listener) would leave behind.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..store import executions
from ..store.listen import PgListener, notify
from .worker import TABLES, Entry, PollingQueue, kinds

CHANNEL = "threadline_queue"
POLL_S = 2.0


class PostgresRunQueue(PollingQueue):
    """NOTIFY-driven claims of queued rows, with a poll as the fallback."""

    def __init__(self, runtime: Any, listener: PgListener, poll_s: float = POLL_S) -> None:
        super().__init__(runtime, poll_s)
        self.listener = listener
        listener.subscribe(CHANNEL, self._notified)
        listener.on_connect(lambda: self.wake_threadsafe(None))

    def _notified(self, payload: str) -> None:
        kind, _, item = payload.partition(":")
        self.wake_threadsafe((kind, item))

    def queued_in(self, conn: sa.Connection, entry: Entry) -> None:
        notify(conn, CHANNEL, f"{entry[0]}:{entry[1]}")

    async def put(self, entry: Entry) -> None:
        if not self.listener.live:  # the notification may be lost: try it here
            self.wake(entry)

    def claim(self, conn: sa.Connection, hint: Entry | None, ts: int) -> dict | None:
        # The oldest claimable execution of the kind that woke us (then of the other kind), whichever one woke us:
        # FIFO across the cluster; rows other workers are claiming right now are skipped, not waited for.
        for kind in kinds(hint[0] if hint is not None else None):
            obj = executions.lock_oldest_claimable(conn, TABLES[kind], ts)
            if obj is not None:
                return obj
        return None
