"""The run queue for server processes sharing one SQLite file (one machine).

The process that creates a background run holds it (lease_owner / lease_until on the queued row, for one lease)
and executes it at once from its in-memory queue. The others poll (every `poll_s`, only while a worker of theirs
is idle) for queued runs nobody holds: a run whose creator is busy past the hold, or died (the sweeper releases
the holds of dead processes at once). Claims are guarded: SQLite's BEGIN IMMEDIATE serialises them, and the claim
checks the run is still queued and not held by another process.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..store import executions
from .executor import OWNER
from .worker import TABLES, Entry, PollingQueue, kinds

POLL_S = 0.5


class SqliteRunQueue(PollingQueue):
    """In-process queue for the runs this process creates, plus a poll for runs nobody holds."""

    def __init__(self, runtime: Any, *, holds: bool, poll_s: float = POLL_S) -> None:
        super().__init__(runtime, poll_s)
        self.holds = holds  # this process executes background runs: keep the ones it creates for itself

    def queued_in(self, conn: sa.Connection, entry: Entry) -> None:
        if self.holds and entry[0] in TABLES:
            until = self.rt.clock.now() + self.rt.settings.run_lease_s
            executions.hold(conn, TABLES[entry[0]], entry[1], OWNER, until)

    def claim(self, conn: sa.Connection, hint: Entry | None, ts: int) -> dict | None:
        if hint is not None:
            if hint[0] not in TABLES:
                return None
            return executions.claimable_by(conn, TABLES[hint[0]], ts, OWNER, hint[1])
        for kind in kinds():
            obj = executions.claimable_by(conn, TABLES[kind], ts, OWNER)
            if obj is not None:
                return obj
        return None
