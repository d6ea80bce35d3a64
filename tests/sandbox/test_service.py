"""The machine's sandbox service (sandbox/service.py) and its client (RemoteSandbox): sessions shared by clients,
files streamed both ways in chunks, cancellation reaching the cell, and only authenticated same-uid clients served."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from threadline.config import Settings
from threadline.sandbox import RemoteSandbox, Sandbox, SandboxManager, SandboxUnavailable
from threadline.sandbox.endpoint import ServiceDir
from threadline.sandbox.selection import open_sandbox
from threadline.sandbox.wire import CHUNK_BYTES

from .util import IS_ROOT, requires_bwrap

pytestmark = requires_bwrap


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    s = Settings()
    s.data_dir = tmp_path / "data"
    s.sandbox_warm_pool = 0
    s.sandbox_max_output_files = 3
    s.sandbox_service_linger_s = 2.0
    yield s
    # The on-demand service exits once nobody is attached for the linger time.
    where = ServiceDir(s.data_dir / "sandbox" / "service")
    deadline = time.monotonic() + 30
    while where.service_running() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not where.service_running(), "the on-demand sandbox service outlived its clients"


def run(body, settings: Settings, clients: int = 1):  # noqa: ANN001, ANN201
    async def main():  # noqa: ANN202
        sandboxes = [open_sandbox(settings) for _ in range(clients)]
        assert all(isinstance(s, RemoteSandbox) for s in sandboxes)
        try:
            return await body(*sandboxes)
        finally:
            for s in sandboxes:
                await s.aclose()

    return asyncio.run(main())


def test_two_clients_share_a_session_and_its_files(settings: Settings) -> None:
    async def body(a: RemoteSandbox, b: RemoteSandbox) -> None:
        r = await a.execute(
            "t",
            "x = 41\nopen('made.txt', 'w').write('by a')\nopen('in.txt', 'a').write('+a')\nopen('in.txt').read()",
            input_files={"in.txt": b"input"},
            input_ids={"in.txt": "file-1"},
        )
        assert r.logs == "'input+a'\n" and r.error is None
        # The other client's execution runs in the same session: variables, files made by the code, and the input
        # file as the code left it (the same input is not placed again over it).
        r = await b.execute(
            "t",
            "x += 1\nprint(x, open('made.txt').read(), open('in.txt').read())",
            input_files={"in.txt": b"input"},
            input_ids={"in.txt": "file-1"},
        )
        assert r.logs == "42 by a input+a\n" and not r.session_restarted
        # A different file under that name is placed.
        r = await b.execute("t", "open('in.txt').read()", input_files={"in.txt": b"v2"}, input_ids={"in.txt": "f2"})
        assert r.logs == "'v2'\n"
        r = await a.execute("t", "open('in.txt').read()", input_files={"in.txt": b"v1"}, input_ids={"in.txt": "file-1"})
        assert r.logs == "'v1'\n"  # the name holds f2 now: file-1 is placed again
        assert a.stats()["sessions"] == 1 and b.last_status == (True, "ok")
        assert a.has_session("t") and b.has_session("t") and not b.has_session("other")
        await a.close_session("t")
        assert not b.has_session("t")
        r = await b.execute("t", "'x' in globals()")
        assert r.logs == "False\n"

    run(body, settings, clients=2)


def test_files_stream_both_ways_in_chunks(settings: Settings, tmp_path: Path) -> None:
    big = os.urandom(5 * CHUNK_BYTES + 123)
    (tmp_path / "big.bin").write_bytes(big)
    reads: list[int] = []

    class Source(io.BytesIO):
        def read(self, n: int = -1) -> bytes:
            data = super().read(n)
            reads.append(len(data))
            return data

    largest: list[int] = []
    saved: dict[str, str] = {}

    def sink(name: str, stream) -> str:  # noqa: ANN001
        h = hashlib.sha256()
        while chunk := stream.read(3 * CHUNK_BYTES):
            largest.append(len(chunk))
            h.update(chunk)
        saved[name] = h.hexdigest()
        return f"ref-{name}"

    async def body(s: RemoteSandbox) -> None:
        code = (
            "import hashlib\nd = open('big.bin', 'rb').read()\nopen('copy.bin', 'wb').write(d[::-1])\n"
            "for i in range(5):\n    open(f'n{i}.txt', 'w').write(str(i))\nhashlib.sha256(d).hexdigest()"
        )
        r = await s.execute("t", code, input_files={"big.bin": lambda: Source(big)}, sink=sink)
        assert r.logs.strip() == repr(hashlib.sha256(big).hexdigest())
        # Streamed: the client's source was read chunk by chunk, never whole.
        assert max(reads) <= CHUNK_BYTES and len(reads) >= 6
        # The 3-file cap holds; the rest are named; each file reached the sink whole, in full-size reads.
        assert [f.name for f in r.files] == ["copy.bin", "n0.txt", "n1.txt"]
        assert r.files_dropped == ["n2.txt", "n3.txt", "n4.txt"]
        assert r.files[0].ref == "ref-copy.bin" and r.files[0].size == len(big)
        assert saved["copy.bin"] == hashlib.sha256(big[::-1]).hexdigest()
        assert max(largest) == 3 * CHUNK_BYTES  # a read(n) gets n bytes until the end, like a file's
        # A sink that fails is reported per file, like in-process.

        def failing(name: str, stream) -> str:  # noqa: ANN001
            stream.read(10)
            raise OSError("disk on fire")

        r = await s.execute("t", "open('z.txt', 'w').write('z')", sink=failing)
        assert r.files == [] and r.file_notes == ["/mnt/data/z.txt could not be saved: disk on fire"]
        r = await s.execute("t", "print('still in step')")
        assert r.logs == "still in step\n"

    run(body, settings)


def test_cancel_reaches_the_cell_in_the_service(settings: Settings) -> None:
    async def body(s: RemoteSandbox) -> None:
        await s.execute("t", "x = 5")
        task = asyncio.ensure_future(s.execute("t", "import time\ntime.sleep(30)\nslept = True"))
        await asyncio.sleep(2.0)  # the cell is sleeping in the service
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - t0 < 5  # not the 30 s of the sleep
        t0 = time.monotonic()
        r = await s.execute("t", "print(x, 'slept' in globals())")
        assert r.logs == "5 False\n" and not r.session_restarted  # interrupted, session kept
        assert time.monotonic() - t0 < 10

    run(body, settings)


def test_a_client_that_dies_mid_cell_stops_the_cell(settings: Settings, tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    script = f"""
import asyncio, sys
from pathlib import Path
from threadline.config import Settings
from threadline.sandbox.selection import open_sandbox

async def main():
    s = Settings()
    s.data_dir = Path({str(settings.data_dir)!r}); s.sandbox_warm_pool = 0; s.sandbox_service_linger_s = 2.0
    sb = open_sandbox(s)
    await sb.execute("t", "y = 1")
    Path({str(marker)!r}).write_text("ready")
    await sb.execute("t", "import time\\ntime.sleep(60)\\ny = 2")

asyncio.run(main())
"""
    proc = subprocess.Popen([sys.executable, "-c", script])

    async def body(s: RemoteSandbox) -> None:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert time.monotonic() < deadline and proc.poll() is None
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.5)
        proc.kill()  # kill -9 of a threadline process while its cell runs
        proc.wait()
        t0 = time.monotonic()
        r = await s.execute("t", "y")  # waits for the killed client's cell, which is interrupted at once
        assert r.logs == "1\n"
        assert time.monotonic() - t0 < 15

    try:
        run(body, settings)
    finally:
        proc.kill()
        proc.wait()


def _service_pids(where: ServiceDir) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"sandbox" in argv and str(where.path).encode() in argv:
                pids.append(int(entry))
    return pids


def test_a_killed_service_is_replaced_and_the_execution_is_told(settings: Settings) -> None:
    where = ServiceDir(settings.data_dir / "sandbox" / "service")

    async def body(s: RemoteSandbox) -> None:
        await s.execute("t", "x = 1")
        [pid] = _service_pids(where)
        task = asyncio.ensure_future(s.execute("t", "import time\ntime.sleep(30)"))
        await asyncio.sleep(1.5)
        os.kill(pid, signal.SIGKILL)
        r = await asyncio.wait_for(task, 20)
        assert r.error == "The Python session was lost (the sandbox service stopped); variables and files were lost."
        r = await s.execute("t", "'x' in globals()")  # a new service, a new session
        assert r.logs == "False\n"
        assert _service_pids(where) not in ([], [pid])

    run(body, settings)


def test_both_implementations_are_sandboxes(settings: Settings) -> None:
    settings.sandbox_service = "off"
    assert isinstance(open_sandbox(settings), Sandbox) and isinstance(open_sandbox(settings), SandboxManager)
    settings.sandbox_service = "external"
    assert isinstance(open_sandbox(settings), Sandbox) and isinstance(open_sandbox(settings), RemoteSandbox)


def _frame(obj: dict) -> bytes:
    payload = orjson.dumps(obj)
    return b"J" + struct.pack(">I", len(payload)) + payload


def _reply(sock: socket.socket) -> dict | None:
    sock.settimeout(10)
    header = sock.recv(5, socket.MSG_WAITALL)
    if len(header) < 5:
        return None
    (length,) = struct.unpack(">I", header[1:])
    return orjson.loads(sock.recv(length, socket.MSG_WAITALL))


def _closed(sock: socket.socket) -> bool:
    sock.settimeout(10)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_only_token_holders_of_the_same_uid_are_served(settings: Settings) -> None:
    async def body(s: RemoteSandbox) -> None:
        await s.start()  # starts the service
        where = ServiceDir(settings.data_dir / "sandbox" / "service")
        assert (os.stat(where.path).st_mode & 0o777) == 0o700
        assert (os.stat(where.socket_path).st_mode & 0o777) == 0o600
        assert (os.stat(where.path / "token").st_mode & 0o777) == 0o600

        def attempt(hello: bytes, then: dict | None = None) -> tuple[dict | None, socket.socket]:
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(str(where.socket_path))
            sock.sendall(hello)
            reply = _reply(sock)
            if then is not None and reply and reply["op"] == "ready":
                sock.sendall(_frame(then))
                reply = _reply(sock)
            return reply, sock

        status = {"op": "status"}
        # The right token: served.
        reply, sock = attempt(_frame({"op": "hello", "token": where.token(), "version": 1}), status)
        assert reply["op"] == "status" and reply["status"][0] is True
        sock.close()
        # A wrong or missing token: refused, nothing else read.
        for hello in ({"op": "hello", "token": "0" * 64, "version": 1}, {"op": "hello", "version": 1}):
            reply, sock = attempt(_frame(hello))
            assert reply == {"op": "error", "kind": "auth", "message": "invalid sandbox service token"}
            with contextlib.suppress(BrokenPipeError):
                sock.sendall(_frame(status))
            assert _closed(sock)
            sock.close()
        # An oversized or malformed first frame: the connection is closed before its payload is read.
        for junk in (b"J" + struct.pack(">I", 1 << 30), b"X" + struct.pack(">I", 4), b"J\x00\x00\x00\x02[]"):
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(str(where.socket_path))
            sock.sendall(junk)
            assert _closed(sock)
            sock.close()
        # Without a launcher (THREADLINE_SANDBOX_SERVICE=external) a missing service is reported, not started.
        other = RemoteSandbox(ServiceDir(settings.data_dir / "elsewhere"), max_output_files=3)
        with pytest.raises(SandboxUnavailable):
            await other.execute("t", "1")
        await other.aclose()

    run(body, settings)


@pytest.mark.skipif(not IS_ROOT, reason="needs root to connect as another uid")
def test_another_uid_is_refused_even_with_the_token(settings: Settings) -> None:
    async def body(s: RemoteSandbox) -> None:
        await s.start()
        where = ServiceDir(settings.data_dir / "sandbox" / "service")
        token = where.token()
        # Loosen the file modes (a misconfiguration): the peer-uid check still refuses another user.
        os.chmod(where.path, 0o755)
        os.chmod(where.socket_path, 0o777)
        try:
            # (the test's tmp dir is not traversable by that user: reach the service dir through an fd opened first)
            script = (
                "import ctypes, os, socket, struct, orjson\n"
                f"d = os.open({str(where.path)!r}, os.O_RDONLY)\n"
                "os.setgid(65534); os.setuid(65534)\n"
                "ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: /proc/self/fd stays ours\n"
                "s = socket.socket(socket.AF_UNIX); s.connect(f'/proc/self/fd/{d}/sandbox.sock')\n"
                f"p = orjson.dumps({{'op': 'hello', 'token': {token!r}, 'version': 1}})\n"
                "try:\n"
                "    s.sendall(b'J' + struct.pack('>I', len(p)) + p)\n"
                "    s.settimeout(10)\n"
                "    print(repr(s.recv(100)))\n"
                "except (BrokenPipeError, ConnectionResetError):\n"
                "    print(repr(b''))\n"
            )
            out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
            assert out.stdout.strip() == "b''", out.stderr  # closed without a word
        finally:
            os.chmod(where.path, 0o700)
            os.chmod(where.socket_path, 0o600)
        r = await s.execute("t", "print('still serving')")
        assert r.logs == "still serving\n"

    run(body, settings)


def test_an_explicit_service_serves_external_mode_until_stopped(settings: Settings) -> None:
    where = ServiceDir(settings.data_dir / "sandbox" / "service")
    settings.sandbox_service = "external"
    cmd = [sys.executable, "-m", "threadline.cli", "sandbox", "--data-dir", str(settings.data_dir)]

    async def unavailable(s: RemoteSandbox) -> None:
        with pytest.raises(SandboxUnavailable, match="no sandbox service"):
            await s.execute("t", "1")

    run(unavailable, settings)  # external: nothing is started on demand
    assert not where.service_running()
    service = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not where.socket_path.exists():
            assert time.monotonic() < deadline and service.poll() is None, service.stdout.read()
            time.sleep(0.05)
        second = subprocess.run(cmd, capture_output=True, timeout=60)
        assert second.returncode == 3  # one service per directory

        async def body(s: RemoteSandbox) -> None:
            r = await s.execute("t", "6 * 7")
            assert r.logs == "42\n"

        run(body, settings)
        time.sleep(settings.sandbox_service_linger_s + 1)
        assert service.poll() is None  # an explicit service does not linger out
    finally:
        service.terminate()
        assert service.wait(30) == 0
    assert not where.socket_path.exists()
