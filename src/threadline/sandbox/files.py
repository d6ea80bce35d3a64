"""Copying files into and out of a sandbox's /mnt/data without trusting anything the sandbox created.

The supervisor (often root) reaches the directory through ``/proc/<pid>/root/mnt/data``. Inside it, the sandboxed
code may have planted symlinks (``out.png -> /etc/shadow``), fifos or devices. Every access therefore goes through
directory fds with ``O_NOFOLLOW``: entries are looked up relative to the directory fd, only regular files are
read, and input files are created with ``O_CREAT | O_EXCL`` after unlinking whatever had that name.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from .result import InputData, OutputCancelled

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_ENTRIES = 2000  # snapshot stops after this many entries (files beyond are not reported)
MAX_DEPTH = 8

_IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")


def is_image(data: bytes) -> bool:
    """PNG, JPEG, GIF or WebP, judged by the file signature (not the name)."""
    if data.startswith(_IMAGE_SIGNATURES):
        return True
    return len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP"


def valid_input_name(name: str) -> bool:
    return (
        bool(name)
        and name not in (".", "..")
        and "/" not in name
        and "\0" not in name
        and len(name.encode("utf-8", "surrogateescape")) <= 255
    )


@dataclass(frozen=True)
class Entry:
    size: int
    mtime_ns: int
    ino: int


def open_dir(path: str) -> int:
    """Open the data directory itself (the /proc/<pid>/root magic link must be followed to get there)."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def snapshot(dir_fd: int) -> dict[str, Entry]:
    """Regular files under the directory: relative path -> (size, mtime, inode). Links are not followed."""
    out: dict[str, Entry] = {}
    count = 0

    def walk(fd: int, prefix: str, depth: int) -> None:
        nonlocal count
        with os.scandir(fd) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            count += 1
            if count > MAX_ENTRIES:
                return
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                out[prefix + e.name] = Entry(st.st_size, st.st_mtime_ns, st.st_ino)
            elif stat.S_ISDIR(st.st_mode) and depth < MAX_DEPTH:
                try:
                    sub = os.open(e.name, _DIR_FLAGS, dir_fd=fd)
                except OSError:
                    continue
                try:
                    walk(sub, prefix + e.name + "/", depth + 1)
                finally:
                    os.close(sub)

    walk(dir_fd, "", 0)
    return out


_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def acting_as(uid: int | None) -> Iterator[None]:
    """Create files as ``uid`` (this thread only).

    A tmpfs mounted inside the sandbox's user namespace refuses new inodes whose owner is not mapped there
    (EOVERFLOW), and root is not. setfsuid/setfsgid are per-thread in the kernel, which makes this safe in a
    worker thread; it also drops root's DAC override for the duration.
    """
    if uid is None or os.geteuid() != 0:
        yield
        return
    old_gid = _libc.setfsgid(uid)
    old_uid = _libc.setfsuid(uid)
    if _libc.setfsuid(-1) != uid or _libc.setfsgid(-1) != uid:
        _libc.setfsuid(old_uid)
        _libc.setfsgid(old_gid)
        raise PermissionError("setfsuid failed")
    try:
        yield
    finally:
        _libc.setfsuid(old_uid)
        _libc.setfsgid(old_gid)


def write_inputs(dir_fd: int, files: dict[str, InputData], uid: int | None) -> None:
    """Place each file at the top of the directory under its name, replacing whatever had that name.

    ``uid``: the sandbox's dedicated uid; the files are created as that user. A file given as an opener is opened
    with the server's own permissions and copied in 1 MiB chunks.
    """
    for name in files:
        if not valid_input_name(name):
            raise ValueError(f"invalid input file name {name!r}")
    for name, data in files.items():
        with contextlib.ExitStack() as stack:
            source = None if isinstance(data, bytes | bytearray | memoryview) else stack.enter_context(data())
            stack.enter_context(acting_as(uid))
            _write_input(dir_fd, name, data if source is None else source)


def _write_input(dir_fd: int, name: str, data: bytes | BinaryIO) -> None:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        st = None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(f"/mnt/data/{name} is a directory")
        os.unlink(name, dir_fd=dir_fd)
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    try:
        chunks = [data] if isinstance(data, bytes | bytearray | memoryview) else iter(lambda: data.read(1 << 20), b"")
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def open_regular(dir_fd: int, rel: str) -> int:
    """Open a regular file by relative path for reading, refusing links and non-regular files at every component.

    Returns the fd (the caller closes it); raises OSError if the path is not a regular file reached without links.
    """
    parts = rel.split("/")
    fds: list[int] = []
    try:
        cur = dir_fd
        for part in parts[:-1]:
            cur = os.open(part, _DIR_FLAGS, dir_fd=cur)
            fds.append(cur)
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=cur)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(f"{rel} is not a regular file")
        return fd
    finally:
        for d in fds:
            os.close(d)


class FileStream:
    """Reads the first ``size`` bytes of ``fd`` (a file that may keep growing under us); raises OutputCancelled
    once ``cancel`` is set. Never holds more than one read's worth of data."""

    def __init__(self, fd: int, size: int, cancel: threading.Event | None = None) -> None:
        self.fd = fd
        self.remaining = size
        self.cancel = cancel

    def read(self, n: int = -1) -> bytes:
        if self.cancel is not None and self.cancel.is_set():
            raise OutputCancelled("the execution was cancelled")
        if self.remaining <= 0:
            return b""
        n = self.remaining if n is None or n < 0 else min(n, self.remaining)
        chunks = []
        while n > 0:
            chunk = os.read(self.fd, min(n, 1 << 20))
            if not chunk:
                self.remaining = 0
                break
            chunks.append(chunk)
            n -= len(chunk)
            self.remaining -= len(chunk)
        return b"".join(chunks)


def changed(before: dict[str, Entry], after: dict[str, Entry]) -> list[str]:
    """Paths that are new or changed, oldest modification first."""
    names = [name for name, e in after.items() if before.get(name) != e]
    return sorted(names, key=lambda n: (after[n].mtime_ns, n))
