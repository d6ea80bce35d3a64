"""The machine's sandbox service: one process owning the SandboxManager that every threadline process shares.

Run explicitly (`threadline sandbox`: serves until SIGTERM/SIGINT) or started on demand by the first threadline
process that needs a sandbox (`threadline sandbox --on-demand`, see remote.Launcher): an on-demand service exits
once no threadline process has been attached to it for ``linger_s`` (its sessions die with it), so it never outlives
the servers by more than that.

Who may connect: the socket is mode 0600 in a 0700 directory (endpoint.py), each connection's SO_PEERCRED uid must
be the service's own, and its first frame must carry the token from the service directory (within 5 s, at most
4 KiB). After that every frame is bounded (wire.py), at most ``max_connections`` connections are served at once, and
the messages a client may send without being asked are bounded too (a connection that sends more than
INBOX_MAX unanswered messages is dropped).

An execution's input files are pulled from the client chunk by chunk while the sandbox writes them into
/mnt/data, and its output files are pulled by the client chunk by chunk while the sandbox reads them: no file is ever
held whole in memory on either side. A client's ``cancel`` (or its connection closing) cancels the manager's
execute task, which interrupts the cell (or kills the session) as it does in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import queue
import signal
import socket
import threading
import time
from typing import Any, BinaryIO

from . import endpoint
from .endpoint import SERVICE_LOCK, ServiceDir, peer_uid, token_matches
from .result import ExecutionResult, OutputCancelled, SandboxUnavailable
from .sessions import SandboxManager
from .wire import CHUNK_BYTES, DATA, MAX_HELLO_BYTES, VERSION, WireError, frame, json_frame, read_frame

log = logging.getLogger("threadline.sandbox.service")

HELLO_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 60.0
IO_TIMEOUT_S = 60.0  # a client that leaves a read or a pull unanswered this long has stopped
INBOX_MAX = 8
LOCK_ATTEMPT_S = 2.0  # others probe the service lock for microseconds; a second service gives up after this


class ServiceRunning(RuntimeError):
    """Another sandbox service already serves this directory."""


class SinkFailed(Exception):
    """The client could not save an output file (its message says why, for the model)."""


class SandboxService:
    def __init__(
        self,
        manager: SandboxManager,
        service_dir: ServiceDir,
        *,
        linger_s: float | None = None,
        max_connections: int = 256,
    ) -> None:
        self.manager = manager
        self.dir = service_dir
        self.linger_s = linger_s
        self.max_connections = max_connections
        self._connections = 0
        self._attached = 0
        self._executing = 0
        self._idle_since = time.monotonic()
        self._stop = asyncio.Event()
        self._token = ""
        self._uid = os.geteuid()

    def stop(self) -> None:
        self._stop.set()

    async def serve(self, ready: threading.Event | None = None) -> None:
        """Serve until stop() (or, on demand, until idle for ``linger_s``). Raises ServiceRunning."""
        self.dir.ensure()
        lock_fd = None
        deadline = time.monotonic() + LOCK_ATTEMPT_S
        while lock_fd is None:
            lock_fd = self.dir.lock(SERVICE_LOCK, blocking=False)
            if lock_fd is None:
                if time.monotonic() > deadline:
                    raise ServiceRunning(f"a sandbox service is already running in {self.dir.path}")
                await asyncio.sleep(0.02)
        server = None
        try:
            self._token = self.dir.token()
            sock = self._bind()
            server = await asyncio.start_unix_server(self._handle, sock=sock, limit=1 << 16)
            log.info("sandbox service listening on %s", self.dir.socket_path)
            if ready is not None:
                ready.set()
            if self.manager.warm_pool:
                warm = asyncio.create_task(self.manager.start())
                warm.add_done_callback(lambda t: t.cancelled() or t.exception())
            await self._wait_until_done()
        finally:
            if server is not None:
                server.close()
            with contextlib.suppress(FileNotFoundError):
                self.dir.socket_path.unlink()
            await self.manager.aclose()
            os.close(lock_fd)
            log.info("sandbox service stopped")

    def _bind(self) -> socket.socket:
        path = self.dir.socket_path
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # left by a service that died: we hold the lock, so nobody serves it
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)  # created 0600: never connectable by others, not even briefly
        try:
            with endpoint.short_path(path) as where:
                sock.bind(where)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        sock.listen(128)
        return sock

    async def _wait_until_done(self) -> None:
        while not self._stop.is_set():
            if self.linger_s is None:
                await self._stop.wait()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=max(0.05, min(1.0, self.linger_s / 4)))
            idle = self._attached == 0 and self._executing == 0
            if not idle:
                self._idle_since = time.monotonic()
            elif time.monotonic() - self._idle_since > self.linger_s:
                log.info("sandbox service: no threadline process attached for %.0f s, exiting", self.linger_s)
                return

    # ----------------------------------------------------------------- connections
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        try:
            uid = peer_uid(sock)
        except OSError:
            uid = -1
        if uid != self._uid or self._connections >= self.max_connections:
            if uid != self._uid:
                log.warning("sandbox service: refused a connection from uid %s", uid)
            writer.close()
            return
        self._connections += 1
        try:
            hello = await asyncio.wait_for(read_frame(reader, MAX_HELLO_BYTES), HELLO_TIMEOUT_S)
            authentic = isinstance(hello, dict) and token_matches(hello.get("token"), self._token)
            if not authentic or hello["op"] != "hello":
                log.warning("sandbox service: refused a connection without the right token")
                writer.write(json_frame({"op": "error", "kind": "auth", "message": "invalid sandbox service token"}))
                await writer.drain()
                return
            writer.write(json_frame({"op": "ready", "version": VERSION}))
            request = await asyncio.wait_for(read_frame(reader), REQUEST_TIMEOUT_S)
            if not isinstance(request, dict):
                return
            await self._dispatch(request, reader, writer)
        except (WireError, TimeoutError, ConnectionError, OSError) as exc:
            log.debug("sandbox service: connection ended: %s", exc)
        except asyncio.CancelledError:
            # The service is stopping. Not re-raised: asyncio 3.11's stream callback would log it as an error.
            pass
        finally:
            self._connections -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _dispatch(
        self, request: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        op = request["op"]
        if op == "execute":
            self._executing += 1
            try:
                await self._execute(request, reader, writer)
            finally:
                self._executing -= 1
                self._idle_since = time.monotonic()
            return
        if op == "attach":
            self._attached += 1
            try:
                writer.write(json_frame({"op": "attached"}))
                await writer.drain()
                while await reader.read(4096):
                    pass
            finally:
                self._attached -= 1
                self._idle_since = time.monotonic()
            return
        if op == "has_session" and isinstance(request.get("key"), str):
            reply: dict[str, Any] = {"op": "has_session", "alive": self.manager.has_session(request["key"])}
        elif op == "close_session" and isinstance(request.get("key"), str):
            await self.manager.close_session(request["key"])
            reply = {"op": "ok"}
        elif op in ("status", "start"):
            if op == "start":
                await self.manager.start()
            status = self.manager.last_status
            reply = {"op": "status", "status": list(status) if status else None, "stats": self.manager.stats()}
        else:
            reply = {"op": "error", "kind": "request", "message": f"unknown request {op!r}"}
        writer.write(json_frame(reply))
        await writer.drain()

    async def _execute(
        self, request: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        key, code, timeout_s = request.get("key"), request.get("code"), request.get("timeout_s")
        inputs = request.get("inputs") or {}
        if (
            not isinstance(key, str)
            or not isinstance(code, str)
            or not (timeout_s is None or (isinstance(timeout_s, int | float) and timeout_s > 0))
            or not isinstance(inputs, dict)
            or not all(isinstance(i, str | None) for i in inputs.values())
        ):
            writer.write(json_frame({"op": "error", "kind": "request", "message": "malformed execute request"}))
            await writer.drain()
            return
        link = _Link(asyncio.get_running_loop(), writer)
        openers = {name: functools.partial(_RemoteInput, link, name) for name in inputs}
        ids = {name: i for name, i in inputs.items() if i is not None}
        task = asyncio.create_task(
            self.manager.execute(
                key,
                code,
                input_files=openers or None,
                timeout_s=timeout_s,
                sink=link.sink,
                input_ids=ids or None,
            )
        )
        pump = asyncio.create_task(_pump(reader, link, task))
        try:
            try:
                result = await task
                reply = _result_to_wire(result)
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
                reply = {"op": "cancelled"}
            except SandboxUnavailable as exc:
                reply = {"op": "error", "kind": "unavailable", "message": str(exc)}
            except Exception as exc:  # noqa: BLE001 - reported to the client, which raises it
                log.exception("sandbox service: execution failed")
                reply = {"op": "error", "kind": "internal", "message": f"{type(exc).__name__}: {exc}"}
            writer.write(json_frame(reply))
            await writer.drain()
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)


async def _pump(reader: asyncio.StreamReader, link: _Link, task: asyncio.Task) -> None:
    """Read the client's messages during an execution: cancel (or the end of the connection) cancels it; the
    rest go to the I/O thread that asked for them. After a cancel, frames are read and dropped (a client may still
    be sending a chunk it was asked for)."""
    try:
        while True:
            msg = await read_frame(reader)
            if msg is None:
                break
            if link.cancelled.is_set():
                continue
            if isinstance(msg, dict) and msg["op"] == "cancel":
                link.cancel()
                task.cancel()
                continue
            try:
                link.inbox.put_nowait(msg)
            except queue.Full:
                raise WireError("too many unanswered messages") from None
    except (WireError, ConnectionError, OSError) as exc:
        log.debug("sandbox service: execute connection broken: %s", exc)
    link.cancel()
    task.cancel()


class _Link:
    """The I/O threads' side of one execute connection: send frames, receive the client's answers."""

    def __init__(self, loop: asyncio.AbstractEventLoop, writer: asyncio.StreamWriter) -> None:
        self.loop = loop
        self.writer = writer
        self.inbox: queue.Queue[dict[str, Any] | bytes] = queue.Queue(maxsize=INBOX_MAX)
        self.cancelled = threading.Event()

    def cancel(self) -> None:
        self.cancelled.set()

    async def _write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def send(self, data: bytes) -> None:
        """Blocking (called on an I/O thread); raises OSError if the client does not take it."""
        try:
            asyncio.run_coroutine_threadsafe(self._write(data), self.loop).result(IO_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - timeout, closed transport, loop gone
            raise OSError(f"the threadline process is gone ({type(exc).__name__})") from None

    def receive(self, cancel: threading.Event | None = None) -> dict[str, Any] | bytes:
        """The client's next message. Raises OutputCancelled once the execution is cancelled, OSError if the
        client stays silent for IO_TIMEOUT_S."""
        deadline = time.monotonic() + IO_TIMEOUT_S
        while True:
            if self.cancelled.is_set() or (cancel is not None and cancel.is_set()):
                raise OutputCancelled("the execution was cancelled")
            try:
                return self.inbox.get(timeout=0.05)
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise OSError("the threadline process stopped answering") from None

    def sink(self, name: str, stream: BinaryIO) -> Any:
        """OutputSink: offer the file to the client, which pulls it chunk by chunk and says whether it saved it."""
        cancel = getattr(stream, "cancel", None)
        self.send(json_frame({"op": "file", "name": name}))
        while True:
            try:
                msg = self.receive(cancel)
                if not isinstance(msg, dict):
                    raise OSError("unexpected data from the threadline process")
                op = msg["op"]
                if op == "pull":
                    n = msg.get("n")
                    n = n if isinstance(n, int) and 0 < n <= CHUNK_BYTES else CHUNK_BYTES
                    data = stream.read(n)
                elif op not in ("saved", "unsaved"):
                    raise OSError(f"unexpected message {op!r} from the threadline process")
            except OutputCancelled:
                self._abort({"op": "file_aborted", "cancelled": True})
                raise
            except Exception as exc:
                self._abort({"op": "file_aborted", "error": str(exc)})
                raise
            if op == "pull":
                self.send(frame(DATA, data))
            elif op == "saved":
                return msg.get("ref")
            elif msg.get("cancelled"):
                raise OutputCancelled("the execution was cancelled")
            else:
                raise SinkFailed(str(msg.get("error") or "unknown error"))

    def _abort(self, msg: dict[str, Any]) -> None:
        """Tell a client pulling a file that it will not get the rest."""
        with contextlib.suppress(OSError):
            self.send(json_frame(msg))


class _RemoteInput:
    """An input file's content, pulled from the client in chunks (a context manager, as write_inputs wants)."""

    def __init__(self, link: _Link, name: str) -> None:
        self.link = link
        self.name = name
        self.done = False

    def __enter__(self) -> _RemoteInput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.done = True

    def close(self) -> None:
        self.done = True

    def read(self, n: int = -1) -> bytes:
        if self.done:
            return b""
        n = CHUNK_BYTES if n is None or n < 0 or n > CHUNK_BYTES else n
        try:
            self.link.send(json_frame({"op": "read", "name": self.name, "n": n}))
            msg = self.link.receive()
        except OutputCancelled:
            raise OSError("the execution was cancelled") from None
        if isinstance(msg, bytes):
            self.done = not msg
            return msg
        if msg.get("op") == "read_error":
            raise OSError(str(msg.get("error") or "unreadable"))
        raise OSError(f"unexpected message {msg.get('op')!r} from the threadline process")


def _result_to_wire(r: ExecutionResult) -> dict[str, Any]:
    return {
        "op": "result",
        "logs": r.logs,
        "error": r.error,
        "timed_out": r.timed_out,
        "files": [{"name": f.name, "size": f.size, "is_image": f.is_image, "ref": f.ref} for f in r.files],
        "session_restarted": r.session_restarted,
        "new_session": r.new_session,
        "notice": r.notice,
        "duration_s": r.duration_s,
        "files_dropped": r.files_dropped,
        "file_notes": r.file_notes,
        "inputs_placed": r.inputs_placed,
    }


def run_service(manager: SandboxManager, service_dir: ServiceDir, *, linger_s: float | None) -> int:
    """Serve in this process until SIGTERM/SIGINT (or idle for ``linger_s``): the `threadline sandbox` command.
    Returns the exit status (0; 3 if another service already serves the directory)."""
    service = SandboxService(manager, service_dir, linger_s=linger_s)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, service.stop)
        await service.serve()

    try:
        asyncio.run(main())
    except ServiceRunning as exc:
        log.info("%s", exc)
        return 3
    return 0
