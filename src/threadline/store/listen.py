"""PostgreSQL LISTEN on one connection per process, dispatching notifications to the parts that subscribed.

The run queue (new queued runs) and the cancellation signal (runs moved to `cancelling`) subscribe; each gets the
payloads of its channel in the listener's thread and hands them to the event loop itself. While the connection is
down (`live` False) notifications may be missed: subscribers fall back to polling, and `on_connect` callbacks run
after every (re)connection so they can catch up.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

import sqlalchemy as sa

log = logging.getLogger("threadline.store")

RECONNECT_S = 1.0


class PgListener:
    """A daemon thread LISTENing on the channels subscribed before start()."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.live = False
        self._handlers: dict[str, list[Callable[[str], None]]] = {}
        self._on_connect: list[Callable[[], None]] = []
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name="threadline-listener", daemon=True)

    def subscribe(self, channel: str, handler: Callable[[str], None]) -> None:
        """Call `handler(payload)` (in the listener thread) for each notification on `channel`."""
        self._handlers.setdefault(channel, []).append(handler)

    def on_connect(self, callback: Callable[[], None]) -> None:
        """Call `callback()` (in the listener thread) after each (re)connection."""
        self._on_connect.append(callback)

    def start(self, timeout: float = 10.0) -> None:
        """Start listening; returns once the first connection LISTENs (or after `timeout` seconds)."""
        if self._handlers and not self._thread.is_alive():
            self._thread.start()
            self._connected.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            raw = None
            try:
                raw = self.engine.raw_connection()
                conn = raw.driver_connection
                conn.autocommit = True
                for channel in self._handlers:
                    conn.execute(f"LISTEN {channel}")
                self.live = True
                self._connected.set()
                for callback in self._on_connect:
                    callback()
                while not self._stop.is_set():
                    for note in conn.notifies(timeout=1.0):
                        for handler in self._handlers.get(note.channel, ()):
                            try:
                                handler(note.payload)
                            except Exception:
                                log.exception("handling a notification on %s failed", note.channel)
            except Exception:
                log.warning("listening for notifications failed; retrying", exc_info=True)
            finally:
                self.live = False
                if raw is not None:
                    with contextlib.suppress(Exception):
                        raw.invalidate()
            self._connected.set()
            self._stop.wait(RECONNECT_S)


def notify(conn: sa.Connection, channel: str, payload: str) -> None:
    """Queue a notification in `conn`'s transaction (delivered when it commits; PostgreSQL only)."""
    conn.execute(sa.text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload})
