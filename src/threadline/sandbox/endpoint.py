"""Where the machine's sandbox service is found, and who may talk to it.

The service directory (default ``<data dir>/sandbox/service``, THREADLINE_SANDBOX_SERVICE_DIR) is created mode 0700
and holds:

- ``sandbox.sock``: the Unix socket (mode 0600);
- ``token``: 32 random bytes (hex), mode 0600, created once; a client must present it;
- ``service.lock``: held (flock) by the running service for its whole life, so at most one serves a directory;
- ``launch.lock``: taken by a process starting the service on demand, so concurrent starters start one;
- ``service.log``: the output of services started on demand.

The service also checks each connection's SO_PEERCRED: only processes of its own uid are served.
"""

from __future__ import annotations

import contextlib
import fcntl
import hmac
import os
import secrets
import socket
import stat
import struct
from pathlib import Path

SOCKET_NAME = "sandbox.sock"
TOKEN_NAME = "token"
SERVICE_LOCK = "service.lock"
LAUNCH_LOCK = "launch.lock"
LOG_NAME = "service.log"
_MAX_SUN_PATH = 100  # sun_path holds 108 bytes; longer paths are reached through /proc/self/fd


class ServiceDir:
    """The files of one sandbox service directory."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def socket_path(self) -> Path:
        return self.path / SOCKET_NAME

    @property
    def log_path(self) -> Path:
        return self.path / LOG_NAME

    def ensure(self) -> None:
        """Create the directory (0700, owned by this uid) and the token, if missing. Raises PermissionError if the
        directory is owned by another user (its token could have been chosen by them)."""
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = os.stat(self.path, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            raise PermissionError(f"sandbox service directory {self.path} is not a directory owned by this user")
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.chmod(self.path, 0o700)
        token = self.path / TOKEN_NAME
        if not token.exists():
            tmp = self.path / f".token-{secrets.token_hex(8)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, secrets.token_hex(32).encode())
            finally:
                os.close(fd)
            with contextlib.suppress(FileExistsError):  # another process won the race: its token stands
                os.link(tmp, token)
            os.unlink(tmp)

    def token(self) -> str:
        """The shared secret (raises OSError if it cannot be read)."""
        fd = os.open(self.path / TOKEN_NAME, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            return os.read(fd, 256).decode().strip()
        finally:
            os.close(fd)

    def lock(self, name: str, *, blocking: bool) -> int | None:
        """An exclusive flock on ``name`` in the directory: its fd (closing it releases the lock), or None if
        ``blocking`` is False and someone else holds it."""
        fd = os.open(self.path / name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return fd

    def service_running(self) -> bool:
        """True while some process holds the service lock."""
        try:
            fd = self.lock(SERVICE_LOCK, blocking=False)
        except FileNotFoundError:
            return False  # no directory yet: no service ever ran here
        if fd is None:
            return True
        os.close(fd)
        return False


def token_matches(given: object, expected: str) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (SO_PEERCRED: pid, uid, gid)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


@contextlib.contextmanager
def short_path(path: Path):  # noqa: ANN201 - yields str
    """A path for bind()/connect() that fits sun_path: the path itself, or /proc/self/fd/<dir fd>/<name>."""
    text = str(path)
    if len(text.encode()) <= _MAX_SUN_PATH:
        yield text
        return
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{dir_fd}/{path.name}"
    finally:
        os.close(dir_fd)


def connect(path: Path, timeout: float) -> socket.socket:
    """A connected Unix stream socket (raises OSError: FileNotFoundError / ConnectionRefusedError if no service)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    try:
        with short_path(path) as where:
            sock.connect(where)
    except BaseException:
        sock.close()
        raise
    return sock
