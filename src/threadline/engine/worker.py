"""Executing runs: the queue of non-streaming runs, in-process workers, crash recovery and the expiry sweep.

The queue and the cancellation signal are behind small interfaces (RunQueue, engine.cancel.CancelSignal) so
that a PostgreSQL-backed multi-process implementation can replace the in-process one without touching the engine.
Leases live in the runs table (lease_owner / lease_until, renewed by the executor's heartbeat).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import sqlalchemy as sa

from .. import metrics
from ..store import Store, schema
from .executor import RunExecutor, close_messages, close_steps

log = logging.getLogger("threadline.engine")

SWEEP_INTERVAL_S = 1.0


class RunQueue(Protocol):
    async def put(self, run_id: str) -> None: ...

    async def get(self) -> str: ...


class InProcessQueue:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[str] = asyncio.Queue()

    async def put(self, run_id: str) -> None:
        self._queue.put_nowait(run_id)

    async def get(self) -> str:
        return await self._queue.get()


class Workers:
    """N worker tasks taking queued runs; streaming runs are executed by the request that holds the stream."""

    def __init__(self, runtime: Any, executor: RunExecutor, queue: RunQueue, concurrency: int) -> None:
        self.rt = runtime
        self.executor = executor
        self.queue = queue
        self.concurrency = concurrency
        self.tasks: set[asyncio.Task] = set()
        self._loops: list[asyncio.Task] = []

    async def start(self, recover_all: bool) -> None:
        await asyncio.to_thread(self.recover, recover_all)
        for run_id in await asyncio.to_thread(self._queued_runs):
            await self.queue.put(run_id)
        self._loops = [asyncio.create_task(self._work()) for _ in range(self.concurrency)]
        self._loops.append(asyncio.create_task(self._sweep_forever()))

    async def stop(self) -> None:
        for task in [*self._loops, *self.tasks]:
            task.cancel()
        await asyncio.gather(*self._loops, *self.tasks, return_exceptions=True)

    def spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _work(self) -> None:
        while True:
            run_id = await self.queue.get()
            try:
                await self.executor.execute(run_id)
            except Exception:
                log.exception("worker failed on %s", run_id)

    def _queued_runs(self) -> list[str]:
        t = schema.runs
        with self.rt.store.read() as conn:
            return list(conn.execute(sa.select(t.c.id).where(t.c.status == "queued").order_by(t.c.seq)).scalars())

    # -- recovery and sweeping ------------------------------------------------------------------------------------

    def recover(self, recover_all: bool) -> int:
        """Runs left in_progress or cancelling by a crashed executor are finished, never left hanging.
        With the embedded SQLite store there is one server process, so at start-up every such run is orphaned;
        otherwise only runs whose lease ran out are."""
        t = schema.runs
        ts = self.rt.clock.now()
        cond = t.c.status.in_(("in_progress", "cancelling"))
        if not recover_all:
            cond = cond & sa.or_(t.c.lease_until.is_(None), t.c.lease_until < ts)
        count = 0
        finished: list[dict] = []
        with self.rt.store.write() as conn:
            for run_id in list(conn.execute(sa.select(t.c.id).where(cond)).scalars()):
                run = Store.fetch(conn, t, run_id, lock=True)
                if run is None or run["status"] not in ("in_progress", "cancelling"):
                    continue
                if run["status"] == "cancelling":
                    run.update(status="cancelled", cancelled_at=ts, expires_at=None)
                    close_steps(conn, run["id"], "cancelled", ts)
                    close_messages(conn, run["id"], "run_cancelled", ts)
                else:
                    run.update(
                        status="failed",
                        failed_at=ts,
                        expires_at=None,
                        last_error={
                            "code": "server_error",
                            "message": "The run was interrupted: its executor stopped.",
                        },
                    )
                    close_steps(conn, run["id"], "failed", ts)
                    close_messages(conn, run["id"], "run_failed", ts)
                Store.update(conn, t, run, status=run["status"], expires_at=run["expires_at"], lease_owner=None)
                finished.append(run)
                count += 1
        for run in finished:
            metrics.run_finished(run)
        if count:
            log.warning("recovered %d interrupted run(s)", count)
        return count

    def expire(self) -> int:
        """Runs past expires_at that no live executor is driving become `expired`."""
        t = schema.runs
        ts = self.rt.clock.now()
        cond = (t.c.expires_at <= ts) & sa.or_(
            t.c.status.in_(("queued", "requires_action")),
            t.c.status.in_(("in_progress", "cancelling")) & sa.or_(t.c.lease_until.is_(None), t.c.lease_until < ts),
        )
        with self.rt.store.read() as conn:
            ids = list(conn.execute(sa.select(t.c.id).where(cond)).scalars())
        for run_id in ids:
            if run_id in self.executor.active:
                continue
            with self.rt.store.write() as conn:
                run = Store.fetch(conn, t, run_id, lock=True)
                if run is None or run["status"] not in ("queued", "requires_action", "in_progress", "cancelling"):
                    continue
                run.update(status="expired", required_action=None)
                close_steps(conn, run_id, "expired", ts)
                close_messages(conn, run_id, "run_expired", ts)
                Store.update(conn, t, run, status="expired", expires_at=run["expires_at"], lease_owner=None)
            metrics.run_finished(run)
        return len(ids)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            try:
                await asyncio.to_thread(self.expire)
                await asyncio.to_thread(self.recover, False)
            except Exception:
                log.exception("sweep failed")
