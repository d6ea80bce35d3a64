"""RemoteSandbox: the Sandbox of a threadline process whose sessions live in the machine's sandbox service.

Each execution is one connection (wire.py), driven by a worker thread: it answers the service's reads of the input
files (opening each blob when the sandbox first asks for it, streaming 1 MiB chunks) and pulls each output file
into the caller's sink chunk by chunk. Cancelling the awaiting task sends ``cancel``; the service interrupts the cell
(or kills the session, as the in-process manager does) and answers ``cancelled``, and only then does CancelledError
reach the caller (or after CANCEL_WAIT_S, when the connection is closed, which the service also treats as a cancel).

While it uses the service, the process keeps one ``attach`` connection open, which tells an on-demand service that
a threadline process is still alive (see service.py). With a Launcher (THREADLINE_SANDBOX_SERVICE=auto), a missing
service is started on demand; without one (``external``), it is reported as unavailable.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO

from . import endpoint
from .endpoint import LAUNCH_LOCK, ServiceDir
from .result import ExecutionResult, InputData, OutputCancelled, OutputFile, OutputSink, SandboxUnavailable
from .wire import CHUNK_BYTES, VERSION, Channel, WireError, json_frame

log = logging.getLogger("threadline.sandbox")

CONNECT_TIMEOUT_S = 30.0  # includes starting the service on demand
CANCEL_WAIT_S = 15.0  # the service answers a cancel within its grace (1 s) plus a kill
IO_TIMEOUT_S = 60.0
START_TIMEOUT_S = 300.0  # probing and filling the warm pool
MAX_LOG_BYTES = 1 << 20  # service.log is rotated at start beyond this


class Launcher:
    """Starts the machine's sandbox service (``argv``, in its own session, output to service.log) unless one is
    running; concurrent launchers (threads or processes) start one between them."""

    def __init__(self, service_dir: ServiceDir, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.dir = service_dir
        self.argv = argv
        self.env = env
        self._procs: list[subprocess.Popen[bytes]] = []

    def __call__(self) -> None:
        """Start the service if none holds its lock; returns once one does. Raises SandboxUnavailable."""
        self.dir.ensure()
        self._procs = [p for p in self._procs if p.poll() is None]  # reap services that exited
        lock = self.dir.lock(LAUNCH_LOCK, blocking=True)
        try:
            if self.dir.service_running():
                return
            log_path = self.dir.log_path
            with contextlib.suppress(OSError):
                if log_path.stat().st_size > MAX_LOG_BYTES:  # one earlier log is kept: the disk use stays bounded
                    log_path.replace(log_path.with_name(log_path.name + ".1"))
            with open(log_path, "ab") as out:
                proc = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    start_new_session=True,  # outlives this process: other threadline processes share it
                    close_fds=True,
                )
            self._procs.append(proc)
            log.info("started the sandbox service (pid %d, %s)", proc.pid, self.dir.path)
            deadline = time.monotonic() + CONNECT_TIMEOUT_S
            while not self.dir.service_running():
                if proc.poll() is not None:
                    raise SandboxUnavailable(
                        f"code interpreter unavailable: the sandbox service exited at start (see {self.dir.log_path})"
                    )
                if time.monotonic() > deadline:
                    raise SandboxUnavailable("code interpreter unavailable: the sandbox service did not start in time")
                time.sleep(0.02)
        finally:
            os.close(lock)


class RemoteSandbox:
    """Sandbox (interface.py) backed by the sandbox service in ``service_dir``."""

    def __init__(
        self,
        service_dir: ServiceDir,
        *,
        max_output_files: int,
        launcher: Callable[[], None] | None = None,
        max_concurrent: int = 64,
    ) -> None:
        self.dir = service_dir
        self.max_output_files = max_output_files
        self._launcher = launcher
        self._status: tuple[bool, str] | None = None
        self._stats: dict[str, Any] = {"sessions": 0, "warm_pool": 0, "cgroups": False, "rss_bytes": 0}
        self._stats_at = 0.0
        self._used = False
        self._attach: Channel | None = None
        self._attach_lock = threading.Lock()
        self._closed = False
        self._io = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="sandbox-remote")

    # ----------------------------------------------------------------- connections
    def _connect(self, request: dict[str, Any], *, launch: bool = True, timeout: float = CONNECT_TIMEOUT_S) -> Channel:
        """An authenticated connection to the service (started first if need be) on which ``request`` was sent
        (right after the hello, without waiting for the answer: one round trip less). Raises SandboxUnavailable."""
        deadline = time.monotonic() + timeout
        next_launch = 0.0
        while True:
            try:
                sock = endpoint.connect(self.dir.socket_path, timeout=5)
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                if self._launcher is None or not launch:
                    raise SandboxUnavailable(
                        f"code interpreter unavailable: no sandbox service at {self.dir.socket_path} "
                        "(start one with `threadline sandbox`)"
                    ) from exc
                self._await_service(deadline, exc)
                if time.monotonic() >= next_launch:  # idempotent: starts one only if none holds the lock
                    self._launcher()
                    next_launch = time.monotonic() + 0.5
                continue
            except OSError as exc:
                raise SandboxUnavailable(
                    f"code interpreter unavailable: cannot reach the sandbox service: {exc}"
                ) from None
            ch = Channel(sock)
            try:
                hello = json_frame({"op": "hello", "token": self.dir.token(), "version": VERSION})
                ch.send(hello + json_frame(request))
                reply = ch.recv(deadline=time.monotonic() + 10)
                break
            except WireError as exc:
                # Connected to a service that was going away (its socket accepts until its process is gone): the
                # request was not acted on (that needs "ready" first), so try again.
                ch.close()
                if self._launcher is None or not launch:
                    raise SandboxUnavailable(
                        f"code interpreter unavailable: the sandbox service did not answer: {exc}"
                    ) from None
                self._await_service(deadline, exc)
            except (TimeoutError, OSError) as exc:
                ch.close()
                raise SandboxUnavailable(
                    f"code interpreter unavailable: the sandbox service did not answer: {exc}"
                ) from None
        if not isinstance(reply, dict) or reply["op"] != "ready":
            ch.close()
            why = reply.get("message") if isinstance(reply, dict) else "unexpected reply"
            raise SandboxUnavailable(f"code interpreter unavailable: the sandbox service refused the connection: {why}")
        self._used = True
        self._ensure_attached()
        return ch

    def _await_service(self, deadline: float, exc: Exception) -> None:
        """Pause before trying the service again; SandboxUnavailable once ``deadline`` has passed."""
        if time.monotonic() > deadline:
            raise SandboxUnavailable(
                f"code interpreter unavailable: the sandbox service did not answer (see {self.dir.log_path})"
            ) from exc
        time.sleep(0.02)

    def _ensure_attached(self) -> None:
        """Keep one `attach` connection open while this process may use the service (reopened if it breaks)."""
        with self._attach_lock:
            if self._attach is not None or self._closed:
                return
            self._attach = _ATTACHING  # type: ignore[assignment]
        try:
            ch = self._connect_raw_attach()
        except (SandboxUnavailable, WireError, OSError, TimeoutError) as exc:
            log.warning("could not attach to the sandbox service: %s", exc)
            with self._attach_lock:
                self._attach = None
            return
        with self._attach_lock:
            self._attach = ch
        threading.Thread(target=self._watch_attach, args=(ch,), name="sandbox-attach", daemon=True).start()

    def _connect_raw_attach(self) -> Channel:
        sock = endpoint.connect(self.dir.socket_path, timeout=5)
        ch = Channel(sock)
        ch.send_json({"op": "hello", "token": self.dir.token(), "version": VERSION})
        reply = ch.recv(deadline=time.monotonic() + 10)
        if not isinstance(reply, dict) or reply["op"] != "ready":
            ch.close()
            raise OSError("refused")
        ch.send_json({"op": "attach"})
        return ch

    def _watch_attach(self, ch: Channel) -> None:
        with contextlib.suppress(WireError, OSError, TimeoutError):
            while True:
                ch.recv()
        with self._attach_lock:
            if self._attach is ch:
                self._attach = None
        ch.close()

    def _request(self, request: dict[str, Any], *, launch: bool, timeout: float) -> dict[str, Any]:
        ch = self._connect(request, launch=launch)
        try:
            reply = ch.recv(deadline=time.monotonic() + timeout)
        except (WireError, TimeoutError) as exc:
            raise SandboxUnavailable(
                f"code interpreter unavailable: the sandbox service did not answer: {exc}"
            ) from None
        finally:
            ch.close()
        if not isinstance(reply, dict) or reply["op"] == "error":
            raise SandboxUnavailable(str(reply.get("message") if isinstance(reply, dict) else "unexpected reply"))
        return reply

    def _note_status(self, reply: dict[str, Any]) -> tuple[bool, str]:
        status = reply.get("status")
        if isinstance(status, list) and len(status) == 2:
            self._status = (bool(status[0]), str(status[1]))
        if isinstance(reply.get("stats"), dict):
            self._stats, self._stats_at = reply["stats"], time.monotonic()
        return self._status or (False, "unknown")

    # ----------------------------------------------------------------- Sandbox
    async def start(self) -> tuple[bool, str]:
        def start() -> tuple[bool, str]:
            try:
                return self._note_status(self._request({"op": "start"}, launch=True, timeout=START_TIMEOUT_S))
            except SandboxUnavailable as exc:
                self._status = (False, str(exc))
                return self._status

        return await asyncio.get_running_loop().run_in_executor(self._io, start)

    async def execute(
        self,
        session_key: str,
        code: str,
        *,
        input_files: dict[str, InputData] | None = None,
        timeout_s: float | None = None,
        sink: OutputSink | None = None,
        input_ids: dict[str, str] | None = None,
    ) -> ExecutionResult:
        """As SandboxManager.execute, in the machine's sandbox service."""
        if self._closed:
            raise SandboxUnavailable("code interpreter is shutting down")
        cancel = threading.Event()
        fut = asyncio.get_running_loop().run_in_executor(
            self._io, self._execute, session_key, code, input_files or {}, input_ids or {}, timeout_s, sink, cancel
        )
        try:
            result = await asyncio.shield(fut)
        except asyncio.CancelledError:
            cancel.set()
            while not fut.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait([fut])
            if not fut.cancelled():
                fut.exception()  # retrieved
            raise
        except SandboxUnavailable as exc:
            self._status = (False, str(exc))
            raise
        if result is None:
            raise SandboxUnavailable("code interpreter unavailable: the sandbox service stopped the execution")
        self._status = (True, "ok")
        return result

    def _execute(
        self,
        key: str,
        code: str,
        input_files: dict[str, InputData],
        input_ids: dict[str, str],
        timeout_s: float | None,
        sink: OutputSink | None,
        cancel: threading.Event,
    ) -> ExecutionResult | None:
        """The blocking side of execute(): None if the execution was cancelled."""
        inputs = {name: input_ids.get(name) for name in input_files}
        ch = self._connect({"op": "execute", "key": key, "code": code, "timeout_s": timeout_s, "inputs": inputs})
        streams: dict[str, BinaryIO] = {}
        refs: list[Any] = []
        cancel_deadline: float | None = None
        try:
            while True:
                if cancel.is_set() and cancel_deadline is None:
                    ch.send_json({"op": "cancel"})
                    cancel_deadline = time.monotonic() + CANCEL_WAIT_S
                msg = ch.recv(deadline=cancel_deadline, poll=0.05)
                if msg is None:
                    continue
                if not isinstance(msg, dict):
                    raise WireError("unexpected data from the sandbox service")
                op = msg["op"]
                if op == "read":
                    _serve_input(ch, msg, input_files, streams)
                elif op == "file":
                    _receive_file(ch, str(msg.get("name")), sink, refs, cancel)
                elif op == "result":
                    return _result_from_wire(msg, refs, in_memory=sink is None)
                elif op == "cancelled":
                    return None
                elif op == "error":
                    if msg.get("kind") == "unavailable":
                        raise SandboxUnavailable(str(msg.get("message")))
                    raise RuntimeError(f"sandbox service: {msg.get('message')}")
                # anything else (a file_aborted after the file was already finished) needs no answer
        except TimeoutError:
            return None  # no answer to the cancel: closing the connection cancels it in the service too
        except WireError as exc:
            if cancel_deadline is not None:
                return None
            log.warning("sandbox service connection lost during an execution: %s", exc)
            return ExecutionResult(
                logs="",
                error="The Python session was lost (the sandbox service stopped); variables and files were lost.",
                timed_out=False,
            )
        finally:
            for stream in streams.values():
                with contextlib.suppress(Exception):
                    stream.close()
            ch.close()

    async def close_session(self, session_key: str) -> None:
        def close() -> None:
            if not self._used and not self.dir.service_running():
                return  # no service: no session to close
            with contextlib.suppress(SandboxUnavailable):
                self._request({"op": "close_session", "key": session_key}, launch=False, timeout=IO_TIMEOUT_S)

        await asyncio.get_running_loop().run_in_executor(self._io, close)

    def has_session(self, session_key: str) -> bool:
        """Whether the service holds a live session for the key (never starts the service; False without one)."""
        if not self._used and not self.dir.service_running():
            return False
        try:
            reply = self._request({"op": "has_session", "key": session_key}, launch=False, timeout=5.0)
        except SandboxUnavailable:
            return False
        return bool(reply.get("alive"))

    @property
    def last_status(self) -> tuple[bool, str] | None:
        """(available, reason) as this process last heard it; None before it asked. Never starts the service."""
        return self._status

    def stats(self) -> dict[str, int]:
        """The service's session counts (asked at most once a second; never starts the service)."""
        if self._used and time.monotonic() - self._stats_at > 1.0:
            try:
                self._note_status(self._request({"op": "status"}, launch=False, timeout=2.0))
            except SandboxUnavailable:
                self._stats_at = time.monotonic()
        return dict(self._stats)

    async def aclose(self) -> None:
        """Detach from the service (an on-demand one exits once no process is attached for its linger time)."""
        self._closed = True
        with self._attach_lock:
            ch, self._attach = self._attach, None
        if isinstance(ch, Channel):
            with contextlib.suppress(OSError):
                ch.sock.shutdown(2)
            ch.close()
        self._io.shutdown(wait=False)


_ATTACHING = object()


def _serve_input(
    ch: Channel, msg: dict[str, Any], input_files: dict[str, InputData], streams: dict[str, BinaryIO]
) -> None:
    """Answer the service's read of an input file: the next chunk (empty at the end) or the error."""
    name = msg.get("name")
    n = msg.get("n")
    n = n if isinstance(n, int) and 0 < n <= CHUNK_BYTES else CHUNK_BYTES
    try:
        if not isinstance(name, str) or name not in input_files:
            raise FileNotFoundError(f"no input file {name!r}")
        stream = streams.get(name)
        if stream is None:
            data = input_files[name]
            stream = io.BytesIO(data) if isinstance(data, bytes | bytearray | memoryview) else data()
            streams[name] = stream
        chunk = stream.read(n)
    except Exception as exc:  # noqa: BLE001 - the blob store failed: the sandbox reports it
        ch.send_json({"op": "read_error", "error": str(exc) or type(exc).__name__})
        stream = streams.pop(name, None) if isinstance(name, str) else None
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()
        return
    ch.send_data(chunk)
    if not chunk:
        streams.pop(name).close()


class _PulledStream:
    """An output file of the sandbox, read by pulling chunks from the service (at most one chunk held)."""

    def __init__(self, ch: Channel, cancel: threading.Event) -> None:
        self.ch = ch
        self.cancel = cancel
        self.done = False
        self.aborted = False

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return b"".join(iter(lambda: self.read(CHUNK_BYTES), b""))
        out: list[bytes] = []
        while n > 0 and not self.done:
            if self.cancel.is_set():
                raise OutputCancelled("the execution was cancelled")
            self.ch.send_json({"op": "pull", "n": min(n, CHUNK_BYTES)})
            msg = self.ch.recv(deadline=time.monotonic() + IO_TIMEOUT_S)
            if isinstance(msg, bytes):
                if not msg:
                    self.done = True
                out.append(msg)
                n -= len(msg)
                continue
            if isinstance(msg, dict) and msg["op"] == "file_aborted":
                self.done = self.aborted = True
                if msg.get("cancelled"):
                    raise OutputCancelled("the execution was cancelled")
                raise OSError(str(msg.get("error") or "the sandbox could not read the file"))
            raise WireError("unexpected message while reading an output file")
        return b"".join(out)


def _receive_file(ch: Channel, name: str, sink: OutputSink | None, refs: list[Any], cancel: threading.Event) -> None:
    stream = _PulledStream(ch, cancel)
    try:
        ref = (sink or _in_memory)(name, stream)
    except WireError:
        raise
    except Exception as exc:  # noqa: BLE001 - the sink failed (blob store, database, size): the service notes it
        if stream.aborted or cancel.is_set():
            return  # the service is not waiting for an answer (or the execution is being cancelled)
        if isinstance(exc, OutputCancelled):
            ch.send_json({"op": "unsaved", "cancelled": True})
        else:
            ch.send_json({"op": "unsaved", "error": str(exc) or type(exc).__name__})
        return
    if stream.aborted:
        return
    refs.append(ref)
    ch.send_json({"op": "saved", "ref": len(refs) - 1})


def _in_memory(name: str, stream: BinaryIO) -> bytes:
    return stream.read()


def _result_from_wire(msg: dict[str, Any], refs: list[Any], *, in_memory: bool) -> ExecutionResult:
    files = []
    for f in msg.get("files") or []:
        ref = refs[f["ref"]] if isinstance(f.get("ref"), int) and 0 <= f["ref"] < len(refs) else None
        files.append(
            OutputFile(
                name=str(f["name"]),
                size=int(f["size"]),
                is_image=bool(f["is_image"]),
                data=ref if in_memory else None,
                ref=None if in_memory else ref,
            )
        )
    return ExecutionResult(
        logs=str(msg.get("logs") or ""),
        error=msg.get("error"),
        timed_out=bool(msg.get("timed_out")),
        files=files,
        session_restarted=bool(msg.get("session_restarted")),
        new_session=bool(msg.get("new_session")),
        notice=msg.get("notice"),
        duration_s=float(msg.get("duration_s") or 0.0),
        files_dropped=list(msg.get("files_dropped") or []),
        file_notes=list(msg.get("file_notes") or []),
        inputs_placed=bool(msg.get("inputs_placed", True)),
    )
