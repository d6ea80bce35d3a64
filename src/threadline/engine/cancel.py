"""Cancellation signals: how an executor learns, within about a second, that its run is being cancelled.

The cancel request persists `cancelling` on the run first (the source of truth), then calls `notify`. The request
may reach any server process, so the executor cannot rely on the in-process call alone: `PolledCancelSignal` also
polls the status of the runs it watches (one indexed query per interval for all of them). On PostgreSQL,
`NotifiedCancelSignal` sends `pg_notify('threadline_cancel', run_id)` after the commit and every process LISTENs,
so the executing process hears of it within milliseconds; its poll only covers a listener that was reconnecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from ..store import Store, executions, schema
from ..store.listen import PgListener
from ..store.listen import notify as pg_notify

log = logging.getLogger("threadline.engine")

POLL_INTERVAL_S = 0.5


class CancelSignal(Protocol):
    """Delivers "cancel run X" to whichever process executes X."""

    def watch(self, run_id: str, on_cancel: Callable[[], None]) -> None:
        """Call `on_cancel` (on the event loop, at most once) when a cancel of `run_id` is requested."""
        ...

    def unwatch(self, run_id: str) -> None:
        """Stop watching `run_id` (its execution ended)."""
        ...

    def notify(self, run_id: str) -> None:
        """A cancel of `run_id` was committed (status `cancelling`). Callable from any thread."""
        ...

    def watching(self, run_id: str) -> bool:
        """Whether a cancel of `run_id` is awaited by this process."""
        ...

    async def aclose(self) -> None:
        """Stop any background work (at server shutdown)."""
        ...


class PolledCancelSignal:
    """In-process delivery plus a poll of the watched runs' status, so cancels made elsewhere arrive too."""

    def __init__(self, store: Store, interval_s: float = POLL_INTERVAL_S) -> None:
        self.store = store
        self.interval_s = interval_s
        self._callbacks: dict[str, Callable[[], None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None

    def watch(self, run_id: str, on_cancel: Callable[[], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._callbacks[run_id] = on_cancel
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._poll_forever())

    def unwatch(self, run_id: str) -> None:
        self._callbacks.pop(run_id, None)

    def watching(self, run_id: str) -> bool:
        return run_id in self._callbacks

    def notify(self, run_id: str) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._fire(run_id)
        else:
            loop.call_soon_threadsafe(self._fire, run_id)

    def _fire(self, run_id: str) -> None:
        callback = self._callbacks.pop(run_id, None)
        if callback is not None:
            callback()

    def _cancelling(self, run_ids: list[str]) -> list[str]:
        # A run being cancelled is `cancelling` until its executor ends it; a response is `cancelled` at once.
        responses = [i for i in run_ids if i.startswith("resp_")]
        runs = [i for i in run_ids if not i.startswith("resp_")]
        with self.store.read() as conn:
            found = executions.with_status(conn, schema.runs, runs, "cancelling") if runs else []
            if responses:
                found += executions.with_status(conn, schema.responses, responses, "cancelled")
            return found

    async def _poll_forever(self) -> None:
        while self._callbacks:
            await self._poll_once()

    def _interval(self) -> float:
        return self.interval_s

    async def _poll_once(self) -> None:
        await asyncio.sleep(self._interval())
        ids = list(self._callbacks)
        if not ids:
            return
        try:
            found = await asyncio.to_thread(self._cancelling, ids)
        except Exception:  # a failed poll is retried at the next interval
            log.warning("polling for cancelled runs failed", exc_info=True)
            return
        for run_id in found:
            self._fire(run_id)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


CHANNEL = "threadline_cancel"
NOTIFIED_POLL_INTERVAL_S = 2.0


class NotifiedCancelSignal(PolledCancelSignal):
    """PostgreSQL: cancels announced with NOTIFY and heard through the process's LISTEN connection, plus a slower
    poll of the watched runs (`poll_s`) in case a notification was missed while the listener reconnected."""

    def __init__(self, store: Store, listener: PgListener, interval_s: float = NOTIFIED_POLL_INTERVAL_S) -> None:
        super().__init__(store, interval_s)
        self.listener = listener
        self._sends: set[asyncio.Task] = set()
        listener.subscribe(CHANNEL, self._notified)

    def _notified(self, run_id: str) -> None:
        loop = self._loop
        if run_id in self._callbacks and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._fire, run_id)

    def notify(self, run_id: str) -> None:
        if self.watching(run_id):  # executed here: delivered at once, nobody else needs to hear of it
            super().notify(run_id)
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._send(run_id)
        else:  # on the event loop: the database call goes to a thread
            task = asyncio.get_running_loop().create_task(asyncio.to_thread(self._send, run_id))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

    def _send(self, run_id: str) -> None:
        try:
            with self.store.write() as conn:
                pg_notify(conn, CHANNEL, run_id)
        except Exception:  # the executing process's poll still finds the cancel
            log.warning("announcing the cancel of %s failed", run_id, exc_info=True)

    def _interval(self) -> float:
        # While the listener is down, poll at the base rate rather than the slow fallback one.
        return self.interval_s if self.listener.live else POLL_INTERVAL_S
