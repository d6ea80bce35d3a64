"""The queue SQLite writers wait in: one writer at a time per database file, across threads and processes.

SQLite allows one writer at a time. A writer that finds the write lock taken is left to SQLite's busy handler,
which sleeps 1, 2, 5, ... up to 100 ms between retries and leaves the lock idle while its waiters sleep. Writers
that queue here instead are woken the moment the previous one finishes: threads of one process on a
`threading.Lock`, processes sharing the file (`serve --workers N`, `threadline worker`) on an flock of
`<database>.write.lock` (flock waiters are woken by the kernel). SQLite's own lock still guards the data; the gate
only orders the writers (anyone writing without it, e.g. the sqlite3 shell, is still waited for by the busy handler).
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from types import TracebackType


class WriteGate:
    """Held around each SQLite write transaction; `with gate:` waits (blocking) for it."""

    def __init__(self, database: Path | None) -> None:
        """`database`: the SQLite file (None for an in-memory database: threads only)."""
        self._threads = threading.Lock()
        self._fd: int | None = None
        if database is not None:
            self._fd = os.open(f"{database}.write.lock", os.O_RDWR | os.O_CREAT, 0o600)

    def acquire(self) -> None:
        """Wait until this thread holds the gate."""
        self._threads.acquire()
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except BaseException:
                self._threads.release()
                raise

    def try_acquire(self) -> bool:
        """Take the gate if no other thread or process holds it now; True if taken."""
        if not self._threads.acquire(blocking=False):
            return False
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._threads.release()
                return False
            except BaseException:
                self._threads.release()
                raise
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WriteGate:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
