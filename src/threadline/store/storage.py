"""A full disk: recognising it in any layer's exception, and the reserve that keeps deletes possible.

SQLite needs free space even to delete (a delete appends the changed pages to the WAL before they are checkpointed).
`StorageReserve` keeps a preallocated file next to the database; a request that frees storage releases it when the
disk is (nearly) full, so the delete has room, and the reserve is taken back as soon as there is room again.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("threadline.storage")

SQLITE_FULL = 13  # primary result code; extended codes keep it in the low byte
PG_DISK_FULL = "53100"
MIN_RESERVE_BYTES = 64 * 1024


def is_disk_full(exc: BaseException) -> bool:
    """True if `exc`, or anything it wraps or was raised from, says the storage is out of space.

    Recognised: OSError ENOSPC / EDQUOT (blob writes), SQLite's SQLITE_FULL ("database or disk is full", also when
    wrapped by SQLAlchemy) and PostgreSQL's disk_full (SQLSTATE 53100).
    """
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        code = getattr(e, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF == SQLITE_FULL:
            return True
        if getattr(e, "sqlstate", None) == PG_DISK_FULL:
            return True
        stack.extend((getattr(e, "orig", None), e.__cause__, e.__context__))
        stack.extend(getattr(e, "exceptions", ()) or ())
    return False


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding `path`."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class StorageReserve:
    """A preallocated file of up to `size` bytes that is given up when a delete needs room on a full disk.

    size 0 disables it. Thread-safe; every method is best effort and never raises on a full disk.
    """

    def __init__(self, path: Path, size: int) -> None:
        self.path = Path(path)
        self.size = max(0, int(size))
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        """Bytes the reserve holds now (0 when released)."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def ensure(self) -> int:
        """(Re)allocate the reserve, as much of `size` as the disk allows; returns the bytes held."""
        if self.size == 0:
            return 0
        with self._lock:
            held = self.held
            if held >= self.size:
                return held
            try:
                want = min(self.size, held + free_bytes(self.path.parent))
            except OSError:
                return held
            while want >= max(held + 1, MIN_RESERVE_BYTES):
                try:
                    fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
                    try:
                        os.posix_fallocate(fd, 0, want)
                    finally:
                        os.close(fd)
                    return want
                except OSError as exc:
                    if not is_disk_full(exc):
                        log.warning("could not allocate the storage reserve %s: %s", self.path, exc)
                        break
                    with contextlib.suppress(OSError):
                        os.truncate(self.path, held)  # give back what a failed fallocate may have taken
                    want //= 2
            return self.held

    def release(self) -> int:
        """Give the reserve's space back to the filesystem; returns the bytes released."""
        with self._lock:
            held = self.held
            self.path.unlink(missing_ok=True)
        if held:
            log.warning("storage is nearly full: released the %d-byte reserve at %s for a delete", held, self.path)
        return held

    @contextlib.contextmanager
    def freeing(self) -> Iterator[None]:
        """Around a request that frees storage: release the reserve if the disk is nearly full, re-take it after."""
        if self.size:
            try:
                low = free_bytes(self.path.parent) < self.size
            except OSError:
                low = True
            if low:
                self.release()
        try:
            yield
        finally:
            self.ensure()
