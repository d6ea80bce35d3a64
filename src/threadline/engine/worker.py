"""Executing runs: the queue of non-streaming runs, in-process workers, crash recovery and the expiry sweep.

The queue and the cancellation signal are behind small interfaces (RunQueue, engine.cancel.CancelSignal) so
that a PostgreSQL-backed multi-process implementation can replace the in-process one without touching the engine.
Leases live in the runs table (lease_owner / lease_until, renewed by the executor's heartbeat).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from .. import metrics
from ..store import Store, dumps, executions, response_events, runs, schema
from .executor import RunExecutor
from .neutral import Usage
from .responses import close_output, error_event, usage_of
from .runtime import EngineRuntime

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

    def __init__(self, runtime: EngineRuntime, executor: RunExecutor, queue: RunQueue, concurrency: int) -> None:
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
        with self.rt.store.read() as conn:
            return executions.queued_ids(conn, schema.runs) + executions.queued_ids(conn, schema.responses)

    # -- recovery and sweeping ------------------------------------------------------------------------------------

    def recover(self, recover_all: bool) -> int:
        """Runs left in_progress or cancelling by a crashed executor are finished, never left hanging.
        With the embedded SQLite store there is one server process, so at start-up every such run is orphaned;
        otherwise only runs whose lease ran out are."""
        t = schema.runs
        ts = self.rt.clock.now()
        finished: list[dict] = []
        with self.rt.store.write() as conn:
            for run_id in executions.orphaned_ids(conn, t, ts, recover_all):
                run = Store.fetch(conn, t, run_id, lock=True)
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
        return len(finished) + self._recover_responses(ts, recover_all)

    def _recover_responses(self, ts: int, recover_all: bool) -> int:
        """Responses left in_progress by a crashed executor become failed (server_error), their open items
        incomplete; queued ones stay queued (re-queued at start-up)."""
        t = schema.responses
        count = 0
        with self.rt.store.write() as conn:
            for response_id in executions.orphaned_ids(conn, t, ts, recover_all):
                response = Store.fetch(conn, t, response_id, lock=True)
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

    def expire(self) -> int:
        """Runs past expires_at that no live executor is driving become `expired`."""
        t = schema.runs
        ts = self.rt.clock.now()
        with self.rt.store.read() as conn:
            ids = executions.expirable_ids(conn, t, ts)
        for run_id in ids:
            if run_id in self.executor.active:
                continue
            with self.rt.store.write() as conn:
                run = Store.fetch(conn, t, run_id, lock=True)
                if run is None or run["status"] not in executions.UNFINISHED:
                    continue
                runs.finish(conn, run, "expired", ts)
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
