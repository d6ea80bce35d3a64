"""Allocation of the unprivileged uids that sandboxes run as (root server only).

A uid is held through an exclusive flock on ``<lock_dir>/<uid>.lock`` for as long as a sandbox uses it, so two
managers on one host (a server and a test run, two workers) never hand out the same uid, and a crashed server's
uids free themselves. Before a sandbox starts under a uid, any process still running under it is killed
(Session.spawn).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from pathlib import Path

from .result import SandboxUnavailable

DEFAULT_LOCK_DIR = Path("/run/threadline-sandbox-uids")


class UidPool:
    def __init__(self, base: int, span: int = 4096, lock_dir: Path = DEFAULT_LOCK_DIR) -> None:
        self.base = base
        self.span = span
        self.lock_dir = lock_dir
        self._held: dict[int, int] = {}  # uid -> lock fd
        self._mutex = threading.Lock()

    def acquire(self) -> int:
        """Lock a free uid (fast: non-blocking flock)."""
        self.lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        for uid in range(self.base, self.base + self.span):
            with self._mutex:
                if uid in self._held:
                    continue
                fd = os.open(self.lock_dir / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                self._held[uid] = fd
            return uid
        raise SandboxUnavailable("code interpreter busy: no free sandbox uid, try again later")

    def release(self, uid: int) -> None:
        with self._mutex:
            fd = self._held.pop(uid, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def held(self) -> list[int]:
        return sorted(self._held)
