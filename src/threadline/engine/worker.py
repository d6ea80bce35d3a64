"""Executing runs: the queue of non-streaming runs, the workers that claim and execute them, crash recovery and
expiry.

A queued run is claimed by exactly one process: a worker locks the `queued` row, and starts it (`queued ->
in_progress` under this process's lease) in the same transaction (the claim is guarded by the row lock and the
status, so a run handed to two workers still starts once). The queue only says when and what to try:
`InProcessQueue` (one process, in-memory SQLite), `queue_sqlite.SqliteRunQueue` (processes sharing an SQLite file)
and `queue_pg.PostgresRunQueue` (any number of processes and machines). Leases live in the runs table
(lease_owner / lease_until, renewed by the executor's heartbeat); engine.sweeper recovers runs whose lease ran
out or whose owner died, and expires runs, once per cluster.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, Protocol

import sqlalchemy as sa

from .. import metrics
from ..store import dumps, executions, response_events, runs, schema
from .events import NullSink
from .executor import RunExecutor
from .neutral import Usage
from .responses import close_output, error_event, usage_of
from .runtime import EngineRuntime

log = logging.getLogger("threadline.engine")

FIRST_POLL_S = 0.05

Entry = tuple[str, str]  # (kind, id): ("run", "run_...") or ("response", "resp_...")
# The execution table of each kind of entry.
TABLES: dict[str, sa.Table] = {"run": schema.runs, "response": schema.responses}


def kind_of(object_id: str) -> str:
    """The queue kind of an execution id (a response's id starts with `resp_`)."""
    return "response" if object_id.startswith("resp_") else "run"


def kinds(first: str | None = None) -> list[str]:
    """Every kind, `first` first (the one a wake-up named)."""
    return sorted(TABLES, key=lambda kind: kind != first)


def _entries(kind: str, conn: sa.Connection, table: sa.Table, ts: int, limit: int | None = None) -> list[Entry]:
    return [(kind, object_id) for object_id in executions.queued_ids(conn, table, ts, limit)]


class RunQueue(Protocol):
    """Where workers learn which queued executions to try to claim."""

    def queued_in(self, conn: sa.Connection, entry: Entry) -> None:
        """Called inside the write transaction that makes `entry` queued (a create, submitted tool outputs), before
        it commits: e.g. queue a NOTIFY, or hold the run for this process."""
        ...

    async def put(self, entry: Entry) -> None:
        """Called after that transaction committed: this process may execute `entry`."""
        ...

    async def get(self) -> Entry | None:
        """Wait for something to try: an entry, or None for "claim whatever is claimable"."""
        ...

    def claim(self, conn: sa.Connection, hint: Entry | None, ts: int) -> dict | None:
        """Inside a write transaction: lock and return a queued run this process may start now (`hint`, or any
        claimable one when the queue picks), or None. `ts`: now, in the clock leases are written in."""
        ...

    async def start(self, idle: Any) -> None:
        """Begin background work (polls, listening); `idle()` -> number of workers waiting for work."""
        ...

    async def aclose(self) -> None:
        """Stop background work."""
        ...


class InProcessQueue:
    """One process: the runs this process queued, in memory (asyncio)."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Entry | None] = asyncio.Queue()

    def queued_in(self, conn: sa.Connection, entry: Entry) -> None:
        return None

    async def put(self, entry: Entry) -> None:
        self._queue.put_nowait(entry)

    async def get(self) -> Entry | None:
        return await self._queue.get()

    def claim(self, conn: sa.Connection, hint: Entry | None, ts: int) -> dict | None:
        if hint is None or hint[0] not in TABLES:
            return None
        return executions.lock_queued(conn, TABLES[hint[0]], hint[1])

    async def start(self, idle: Any) -> None:
        return None

    async def aclose(self) -> None:
        return None


class PollingQueue(InProcessQueue):
    """A queue over a database several processes share: entries this process put, plus a poll (every `poll_s`, only
    while workers wait) for queued runs that any process may take. Subclasses say what may be claimed."""

    def __init__(self, runtime: Any, poll_s: float) -> None:
        super().__init__()
        self.rt = runtime
        self.poll_s = poll_s
        self.missed = False  # a wake-up found every worker busy: a worker that finishes should look again
        self._idle: Any = lambda: 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None

    async def start(self, idle: Any) -> None:
        self._idle = idle
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._poll_forever())

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def wake(self, entry: Entry | None) -> None:
        """Hand `entry` (None: "look") to a waiting worker, if one waits. Call on the event loop."""
        if self._idle() > self._queue.qsize():
            self._queue.put_nowait(entry)
        else:
            self.missed = True

    def wake_threadsafe(self, entry: Entry | None) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.wake, entry)

    async def _poll_forever(self) -> None:
        await asyncio.sleep(FIRST_POLL_S)  # at start-up, once the workers wait: runs queued while none was running
        while True:
            wanted = self._idle() - self._queue.qsize()
            if wanted > 0:
                try:
                    ids = await asyncio.to_thread(self.claimable, wanted)
                except Exception:
                    log.warning("polling for queued runs failed", exc_info=True)
                    ids = []
                for entry in ids:
                    self.wake(entry)
            await asyncio.sleep(self.poll_s)

    def claimable(self, limit: int) -> list[Entry]:
        """Up to `limit` queued runs and responses, oldest first within each kind, that this process may claim
        (nobody holds them)."""
        ts = self.rt.clock.now()
        with self.rt.store.read() as conn:
            found = [entry for kind, table in TABLES.items() for entry in _entries(kind, conn, table, ts, limit)]
        return found[:limit]


class Workers:
    """N worker tasks claiming and executing queued runs; streaming runs are executed by the request that holds
    the stream. With concurrency 0 the process executes no background runs (a pure API process)."""

    def __init__(self, runtime: EngineRuntime, executor: RunExecutor, queue: RunQueue, concurrency: int) -> None:
        self.rt = runtime
        self.executor = executor
        self.queue = queue
        self.concurrency = concurrency
        self.tasks: set[asyncio.Task] = set()
        self._loops: list[asyncio.Task] = []
        self.waiting = 0  # workers waiting for work

    async def start(self) -> None:
        self._loops = [asyncio.create_task(self._work()) for _ in range(self.concurrency)]
        if self.concurrency:
            await self.queue.start(lambda: self.waiting)
            for entry in await asyncio.to_thread(self._queued):
                await self.queue.put(entry)

    async def stop(self) -> None:
        for task in [*self._loops, *self.tasks]:
            task.cancel()
        await asyncio.gather(*self._loops, *self.tasks, return_exceptions=True)
        await self.queue.aclose()

    def spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _work(self) -> None:
        while True:
            self.waiting += 1
            try:
                hint = await self.queue.get()
            finally:
                self.waiting -= 1
            while True:  # after a run, a worker may go on claiming (see the end of the loop)
                try:
                    # Executions are made on the event loop; the claim says which of the two starts.
                    jobs = {"run": self.executor.job(NullSink()), "response": self.executor.background_job()}
                    claimed = await self.rt.store.run_write(self._claim, jobs, hint)
                    if claimed is None:
                        break
                    await self.executor.execute(claimed, job=jobs[kind_of(claimed)])
                except Exception:
                    log.exception("worker failed on %s", hint)
                    break
                # Wake-ups that came while every worker was busy were dropped: take what they announced, oldest
                # first, until nothing is left.
                if hint is not None and not getattr(self.queue, "missed", False):
                    break
                self.queue.missed = False
                hint = None

    def _claim(self, jobs: dict[str, Any], hint: Entry | None) -> str | None:
        """Claim a queued run or response and start it (with the job of its kind) in the same transaction; its id,
        or None if there was none to take."""
        with self.rt.store.write() as conn:
            obj = self.queue.claim(conn, hint, self.rt.clock.now())
            if obj is None:
                return None
            jobs[kind_of(obj["id"])].start_in(conn, obj)
            return obj["id"]

    def _queued(self) -> list[Entry]:
        """Queued runs and responses this process may take at start-up (held by nobody, or by a lease that ran
        out), oldest first within each kind."""
        with self.rt.store.read() as conn:
            return [
                entry for kind, table in TABLES.items() for entry in _entries(kind, conn, table, self.rt.clock.now())
            ]

    # -- recovery and sweeping ------------------------------------------------------------------------------------

    def recover(self, recover_all: bool = False, *, ts: int | None = None, dead_owners: Iterable[str] = ()) -> int:
        """Runs left in_progress or cancelling by an executor that stopped are finished, never left hanging: those
        whose lease ran out (before `ts`, default the runtime clock's now), and those leased by `dead_owners`
        (processes known to be gone: engine.owners). `recover_all`: every such run (only for a database no other
        process uses)."""
        t = schema.runs
        ts = self.rt.clock.now() if ts is None else ts
        dead = list(dead_owners)
        cond = executions.orphaned(t, ts, recover_all, dead)
        finished: list[dict] = []
        with self.rt.store.write() as conn:
            for run_id in executions.orphaned_ids(conn, t, ts, recover_all, dead):
                # Still orphaned under the row lock (not taken again meanwhile).
                run = executions.lock_where(conn, t, run_id, cond)
                if run is None or run["status"] not in executions.EXECUTING:
                    continue
                if run["status"] == "cancelling":
                    runs.finish(conn, run, "cancelled", ts)
                else:
                    error = {"code": "server_error", "message": "The run was interrupted: its executor stopped."}
                    runs.finish(conn, run, "failed", ts, last_error=error)
                finished.append(run)
        for run in finished:
            metrics.run_finished(run)
        if finished:
            log.warning("recovered %d interrupted run(s)", len(finished))
        return len(finished) + self._recover_responses(ts, recover_all, dead)

    def _recover_responses(self, ts: int, recover_all: bool, dead: list[str]) -> int:
        """Responses left in_progress by an executor that stopped (the same selection as recover's) become failed
        (server_error), their open items incomplete; queued ones stay queued (claimed by any process)."""
        t = schema.responses
        cond = executions.orphaned(t, ts, recover_all, dead)
        count = 0
        with self.rt.store.write() as conn:
            for response_id in executions.orphaned_ids(conn, t, ts, recover_all, dead):
                response = executions.lock_where(conn, t, response_id, cond)
                if response is None or response["status"] != "in_progress":
                    continue
                close_output(response.get("output") or [])
                error = {"code": "server_error", "message": "The response was interrupted: its executor stopped."}
                response.update(status="failed", error=error, usage=response.get("usage") or usage_of(Usage(0, 0)))
                executions.save(conn, t, response, lease_owner=None)
                if response.get("background"):  # its recorded stream ends the way a live one would
                    seq = response_events.next_seq(conn, response_id)
                    events = [
                        {"type": "error", "sequence_number": seq, **error_event(error["message"], "server_error")},
                        {"type": "response.failed", "sequence_number": seq + 1, "response": response},
                    ]
                    response_events.append(conn, response_id, [(e["sequence_number"], dumps(e)) for e in events])
                count += 1
        if count:
            log.warning("recovered %d interrupted response(s)", count)
        return count

    def expire(self, *, ts: int | None = None, dead_owners: Iterable[str] = ()) -> int:
        """Runs past expires_at (at `ts`, default the runtime clock's now) that no live executor is driving become
        `expired`."""
        t = schema.runs
        ts = self.rt.clock.now() if ts is None else ts
        dead = list(dead_owners)
        cond = executions.expirable(t, ts, dead)
        with self.rt.store.read() as conn:
            ids = executions.expirable_ids(conn, t, ts, dead)
        for run_id in ids:
            if run_id in self.executor.active:
                continue
            with self.rt.store.write() as conn:
                run = executions.lock_where(conn, t, run_id, cond)
                if run is None or run["status"] not in executions.UNFINISHED:
                    continue
                runs.finish(conn, run, "expired", ts)
            metrics.run_finished(run)
        return len(ids)
