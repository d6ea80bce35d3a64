"""Functional behaviour of the code_interpreter sandbox: state, files, figures, timeouts, session lifecycle."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from threadline.sandbox import SandboxManager, SandboxUnavailable
from threadline.sandbox import sessions as sessions_mod

from .util import IS_ROOT, descendants, processes_of_uid, requires_bwrap, still_running

pytestmark = requires_bwrap


def test_state_persists_and_expressions_echo(run_manager):
    async def body(m: SandboxManager):
        assert not m.has_session("t")
        r1 = await m.execute("t", "x = 41\nprint('hello')\nimport sys; print('warn', file=sys.stderr)")
        assert m.has_session("t")
        assert r1.error is None and not r1.timed_out
        assert r1.logs == "hello\nwarn\n"
        r2 = await m.execute("t", "x += 1\nx")
        assert r2.logs == "42\n"
        r3 = await m.execute("t", "{'a': [1, 2]}")
        assert r3.logs == "{'a': [1, 2]}\n"
        r4 = await m.execute("t", "None")  # None is not echoed
        assert r4.logs == ""
        r5 = await m.execute("t", "import subprocess\nsubprocess.run(['echo', 'from-child'])\nprint('after')")
        assert r5.logs == "from-child\nafter\n"  # subprocess output is captured, in order

    run_manager(body)


def test_errors_are_tracebacks_and_session_survives(run_manager):
    async def body(m: SandboxManager):
        r = await m.execute("t", "y = 1\ndef f():\n    return 1 / 0\nf()")
        assert r.error is not None and not r.timed_out
        assert "ZeroDivisionError: division by zero" in r.error
        assert "return 1 / 0" in r.error  # source lines of the cell are shown
        assert "repl.py" not in r.error  # the REPL's own frames are hidden
        r = await m.execute("t", "def broken(:\n  pass")
        assert "SyntaxError" in r.error
        r = await m.execute("t", "raise SystemExit(3)")
        assert "SystemExit" in r.error
        r = await m.execute("t", "y")
        assert r.logs == "1\n" and r.error is None

    run_manager(body)


def test_input_and_output_files(run_manager):
    async def body(m: SandboxManager):
        r = await m.execute(
            "t",
            "import os\nprint(sorted(os.listdir('.')))\nprint(open('data.csv').read())",
            input_files={"data.csv": b"a,b\n1,2\n", "notes (file-abc).txt": b"keep"},
        )
        assert r.error is None, r.error
        assert "['data.csv', 'notes (file-abc).txt']" in r.logs and "a,b\n1,2" in r.logs
        assert r.files == []  # unchanged inputs are not outputs
        code = (
            "import pandas as pd, os\n"
            "df = pd.read_csv('data.csv')\n"
            "df.to_csv('out.csv', index=False)\n"
            "os.makedirs('sub', exist_ok=True)\n"
            "open('sub/deep.txt', 'w').write('deep')\n"
            "open('notes (file-abc).txt', 'a').write('+changed')\n"
            "from PIL import Image\n"
            "Image.new('RGB', (4, 4), 'red').save('red.webp')\n"
            "Image.new('RGB', (4, 4), 'red').save('red.jpg')\n"
            "open('fake.png', 'w').write('not really a png')\n"
            "os.symlink('/etc/passwd', 'link.txt')\n"
        )
        r = await m.execute("t", code)
        assert r.error is None, r.error
        got = {f.name: f for f in r.files}
        assert set(got) == {"out.csv", "sub/deep.txt", "notes (file-abc).txt", "red.webp", "red.jpg", "fake.png"}
        assert got["out.csv"].data == b"a,b\n1,2\n" and not got["out.csv"].is_image
        assert got["notes (file-abc).txt"].data == b"keep+changed"
        assert got["red.webp"].is_image and got["red.jpg"].is_image
        assert not got["fake.png"].is_image  # judged by signature, not by name
        # Nothing changed: nothing reported.
        r = await m.execute("t", "1")
        assert r.files == []
        # Replacing an input of the same name.
        r = await m.execute("t", "open('data.csv').read()", input_files={"data.csv": b"new"})
        assert r.logs == "'new'\n"
        with pytest.raises(ValueError):
            await m.execute("t", "1", input_files={"../escape": b"x"})

    run_manager(body)


def test_input_files_stream_from_an_opener(run_manager, tmp_path: Path):
    private = tmp_path / "private"  # readable by the server only, not by a sandbox uid
    private.mkdir(mode=0o700)
    data = os.urandom((20 << 20) + 1)
    (private / "big.bin").write_bytes(data)
    reads: list[int] = []

    class Tracking(io.FileIO):
        def read(self, n: int = -1) -> bytes:
            chunk = super().read(n)
            reads.append(len(chunk))
            return chunk

    async def body(m: SandboxManager):
        code = "import hashlib\nhashlib.sha256(open('big.bin', 'rb').read()).hexdigest()"
        r = await m.execute("t", code, input_files={"big.bin": lambda: Tracking(private / "big.bin", "rb")})
        assert r.error is None, r.error
        assert r.logs.strip().strip("'") == hashlib.sha256(data).hexdigest()
        assert max(reads) <= 1 << 20  # copied in chunks, never whole

    run_manager(body)


def test_figures_become_png_outputs(run_manager):
    async def body(m: SandboxManager):
        code = (
            "import matplotlib.pyplot as plt\n"
            "plt.plot([1, 2, 3]); plt.title('first'); plt.show()\n"
            "plt.plot([3, 2, 1]); plt.show()\n"
            "plt.figure(); plt.bar(['a', 'b'], [1, 2]);\n"  # left open: saved after the cell; ";" = no echo
        )
        r = await m.execute("t", code)
        assert r.error is None, r.error
        assert [f.name for f in r.files] == ["plot_1.png", "plot_2.png", "plot_3.png"]
        assert all(f.is_image and f.data.startswith(b"\x89PNG") and len(f.data) > 5000 for f in r.files)
        assert r.logs == ""  # no "non-interactive backend" warning
        r = await m.execute("t", "import matplotlib.pyplot as plt\nplt.get_fignums()")
        assert r.logs == "[]\n" and r.files == []
        r = await m.execute("t", "import pandas as pd\npd.Series([1, 3, 2]).plot()")
        assert [f.name for f in r.files] == ["plot_4.png"]

    run_manager(body)


def test_timeout_interrupts_and_keeps_state(run_manager):
    async def body(m: SandboxManager):
        await m.execute("t", "x = 'kept'")
        t0 = time.monotonic()
        r = await m.execute("t", "import time\nprint('started')\ntime.sleep(60)", timeout_s=1)
        assert r.timed_out and time.monotonic() - t0 < 30  # interrupted, not slept out
        assert "KeyboardInterrupt" in r.error and "started" in r.logs
        r = await m.execute("t", "x")
        assert r.logs == "'kept'\n" and not r.session_restarted
        r = await m.execute("t", "while True:\n    pass", timeout_s=1)  # CPU-bound loop
        assert r.timed_out
        r = await m.execute("t", "x")
        assert r.logs == "'kept'\n"

    run_manager(body)


def test_timeout_kills_session_that_ignores_interrupt(run_manager):
    async def body(m: SandboxManager):
        await m.execute("t", "x = 1")
        code = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
        r = await m.execute("t", code, timeout_s=1)
        assert r.timed_out and "terminated" in r.error
        assert not m.has_session("t")
        r = await m.execute("t", "print('fresh'); 'x' in globals()")
        assert r.logs == "fresh\nFalse\n"
        assert r.session_restarted and r.notice

    run_manager(body, interrupt_grace_s=0.5)


def test_idle_expiry(run_manager):
    async def body(m: SandboxManager):
        await m.execute("t", "x = 1")
        await asyncio.wait_for(_until(lambda: m.session_keys() == []), 30)  # reaped in the background
        assert not m.has_session("t")
        r = await m.execute("t", "'x' in globals()")
        assert r.logs == "False\n" and r.session_restarted and "idle" in r.notice

    run_manager(body, idle_timeout_s=0.3)


def test_lru_eviction(run_manager):
    async def body(m: SandboxManager):
        for key in ("a", "b"):
            await m.execute(key, f"name = {key!r}")
        await m.execute("a", "name")  # a is now the most recently used
        await m.execute("c", "name = 'c'")  # evicts b
        assert m.session_keys() == ["a", "c"]
        assert (await m.execute("a", "name")).logs == "'a'\n"
        r = await m.execute("b", "'name' in globals()")
        assert r.logs == "False\n" and r.session_restarted
        assert len(m.session_keys()) == 2

    run_manager(body, max_sessions=2)


def test_same_key_is_serialized_and_keys_run_in_parallel(run_manager):
    async def body(m: SandboxManager):
        await m.execute("a", "n = 0\nspans = []")
        await m.execute("b", "pass")
        # Each cell records when it ran (CLOCK_MONOTONIC is the host's: sandboxes have no time namespace).
        step = (
            "import time\nt0 = time.monotonic()\nv = n\ntime.sleep(0.3)\nn = v + 1\n"
            "spans.append((t0, time.monotonic()))"
        )
        await asyncio.gather(m.execute("a", step), m.execute("a", step))
        r = await m.execute("a", "n, spans")
        n, spans = eval(r.logs)  # noqa: S307 - our own tuple repr
        assert n == 2  # no lost update
        (s1, e1), (s2, e2) = sorted(spans)
        assert e1 <= s2  # one after the other, never overlapping
        # Another key runs while "a" is busy: b's cell finishes while a's long cell is still running.
        slow = asyncio.ensure_future(m.execute("a", "import time\ntime.sleep(60)", timeout_s=120))
        await asyncio.wait_for(_until(lambda: m._sessions["a"].busy), 30)
        r = await m.execute("b", "print('b ran')")
        assert r.logs == "b ran\n" and not slow.done()
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow

    run_manager(body)


def test_cancel_interrupts_the_cell_promptly_and_keeps_the_session(run_manager):
    async def body(m: SandboxManager):
        await m.execute("t", "x = 5")
        task = asyncio.ensure_future(m.execute("t", "import time\nprint('before')\ntime.sleep(30)\nprint('after')"))
        await asyncio.wait_for(_until(lambda: m._sessions["t"].busy), 30)
        await asyncio.sleep(0.3)  # the cell is sleeping
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - t0 < 5  # not the 30 s of the sleep
        r = await m.execute("t", "print('next'); x")
        assert r.logs == "next\n5\n" and r.error is None  # its own output, not the cancelled cell's
        assert not r.session_restarted
        r = await m.execute("t", "print('in step')")
        assert r.logs == "in step\n"

    run_manager(body)


def test_cancel_kills_a_session_that_ignores_the_interrupt(run_manager):
    async def body(m: SandboxManager):
        await m.execute("t", "x = 1")
        code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)"
        task = asyncio.ensure_future(m.execute("t", code))
        await asyncio.wait_for(_until(lambda: m._sessions["t"].busy), 30)
        await asyncio.sleep(0.3)
        pids = descendants(os.getpid())
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - t0 < 10  # grace, then kill: not the 60 s sleep or the 20 s wall clock
        assert not m.has_session("t")
        t0 = time.monotonic()
        r = await m.execute("t", "print('fresh'); 'x' in globals()")
        assert r.logs == "fresh\nFalse\n" and r.session_restarted and "cancelled" in r.notice
        assert time.monotonic() - t0 < 15
        assert still_running(pids) == []  # no process of the old sandbox is left

    run_manager(body, wall_clock_s=20)


def test_cancel_while_streaming_outputs_stops_the_copy(run_manager):
    async def body(m: SandboxManager):
        started = threading.Event()
        copied: list[str] = []

        def sink(name: str, stream) -> str:  # noqa: ANN001
            started.set()
            while stream.read(1 << 16):
                time.sleep(0.01)  # a slow blob store
            copied.append(name)
            return name

        code = "import os\nfor i in range(3):\n    open(f'f{i}.bin', 'wb').write(os.urandom(8 << 20))"
        task = asyncio.ensure_future(m.execute("t", code, sink=sink))
        await asyncio.wait_for(_until(started.is_set), 60)
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - t0 < 5 and len(copied) < 3
        r = await m.execute("t", "print(sorted(os.listdir('.')))")
        assert r.logs == "['f0.bin', 'f1.bin', 'f2.bin']\n"  # the files stay; the session is in step

    run_manager(body)


def test_close_session_and_aclose_leave_no_processes(tmp_path: Path):
    async def main():
        m = SandboxManager(root_dir=tmp_path, warm_pool=1)
        try:
            await m.start()
            uids = []
            for key in ("a", "b"):
                r = await m.execute(key, "import os, subprocess\nsubprocess.Popen(['sleep', '300'])\nos.getuid()")
                uids.append(int(r.logs))
            while not m._pool:
                await asyncio.sleep(0.05)
            pids_a = processes_of_uid(uids[0]) if IS_ROOT else []
            await m.close_session("a")
            # (uids are released on close and may be reused by another manager on this host: compare pids)
            if IS_ROOT:
                assert len(pids_a) >= 4 and still_running(pids_a) == []
                assert processes_of_uid(uids[1]) != []
            pids = descendants(os.getpid())
            assert len(pids) >= 7  # session b (bwrap, its init, REPL, sleep) and the pool's sandbox
        finally:
            await m.aclose()
        return pids

    pids = asyncio.run(main())
    assert still_running(pids) == [] and descendants(os.getpid()) == []


def test_warm_pool_gives_prepared_clean_session(tmp_path: Path):
    async def main():
        m = SandboxManager(root_dir=tmp_path, warm_pool=1)
        try:
            await m.start()
            pooled = m._pool[0]
            r = await m.execute(
                "t",
                "import sys\nprint('matplotlib.pyplot' in sys.modules, 'pandas' in sys.modules)\n"
                "import pandas as pd, matplotlib.pyplot as plt\nsorted(k for k in globals() if not k.startswith('__'))",
            )
            assert m._sessions["t"].session is pooled  # served from the pool, not started cold
            # The heavy modules were already imported (that is what makes it fast), but the prelude's names did
            # not leak into the namespace.
            assert r.logs == "True True\n['pd', 'plt', 'sys']\n"
            await asyncio.wait_for(_until(lambda: m.stats()["warm_pool"] == 1), 60)  # refilled
        finally:
            await m.aclose()

    asyncio.run(main())


async def _until(cond) -> None:
    while not cond():
        await asyncio.sleep(0.05)


def test_unavailable_without_venv_or_bwrap(tmp_path: Path, monkeypatch):
    async def main(m: SandboxManager):
        with pytest.raises(SandboxUnavailable) as exc:
            await m.execute("t", "print(1)")
        return str(exc.value)

    m = SandboxManager(root_dir=tmp_path, venv=tmp_path / "no-venv", warm_pool=0)
    ok, reason = m.available()
    assert not ok and "no-venv" in reason and "setup-sandbox" in reason
    assert "setup-sandbox" in asyncio.run(main(m))

    monkeypatch.setattr(sessions_mod, "find_bwrap", lambda: None)
    m = SandboxManager(root_dir=tmp_path, warm_pool=0)
    ok, reason = m.available()
    assert not ok and "bubblewrap" in reason
    assert "bubblewrap" in asyncio.run(main(m))


def test_unsafe_opt_in_runs_without_bwrap(tmp_path: Path, monkeypatch, caplog):
    monkeypatch.setattr(sessions_mod, "find_bwrap", lambda: None)
    monkeypatch.setenv(sessions_mod.UNSAFE_ENV, "1")

    async def main():
        m = SandboxManager(root_dir=tmp_path, warm_pool=0)
        try:
            r = await m.execute("t", "import os\nx = 2\nopen('o.txt', 'w').write('hi')\nos.getuid() != 0")
            r2 = await m.execute("t", "x * 21")
            return r, r2
        finally:
            await m.aclose()

    r, r2 = asyncio.run(main())
    assert r.logs == "True\n" and [f.name for f in r.files] == ["o.txt"] and r2.logs == "42\n"
    assert any("WITHOUT a sandbox" in rec.message for rec in caplog.records)


def test_output_is_truncated(run_manager):
    async def body(m: SandboxManager):
        r = await m.execute("t", "for i in range(100000):\n    print('line', i)")
        assert len(r.logs) < 2000 and "truncated" in r.logs
        assert r.logs.startswith("line 0\n") and r.logs.endswith("line 99999\n")
        r = await m.execute("t", "raise ValueError('start' + 'x' * 10**7 + 'end')")
        assert len(r.error) < 2000 and "truncated" in r.error
        assert r.error.startswith("Traceback") and r.error.rstrip().endswith("end")
        r = await m.execute("t", "print('ok')")
        assert r.logs == "ok\n"

    run_manager(body, max_log_bytes=1000)


def test_output_files_are_capped_per_execution(run_manager):
    async def body(m: SandboxManager):
        r = await m.execute("t", "for i in range(50):\n    open(f'f{i:02}.txt', 'w').write(str(i))")
        assert r.error is None, r.error
        assert [f.name for f in r.files] == [f"f{i:02}.txt" for i in range(5)]
        assert [f.data for f in r.files] == [str(i).encode() for i in range(5)]
        assert r.files_dropped == [f"f{i:02}.txt" for i in range(5, 50)]
        r = await m.execute("t", "open('one.txt', 'w').write('1')")
        assert [f.name for f in r.files] == ["one.txt"] and r.files_dropped == []

    run_manager(body, max_output_files=5)


def test_output_files_are_bounded_in_total_even_if_replaced_while_copied(run_manager):
    async def body(m: SandboxManager):
        def sink(name: str, stream) -> int:  # noqa: ANN001
            if name == "a.bin":  # meanwhile a process of the sandbox empties a.bin and fills b.bin
                session = m._sessions["t"].session
                os.truncate(os.path.join(session.data_dir_path(), "a.bin"), 0)
                with open(os.path.join(session.data_dir_path(), "b.bin"), "ab") as f:
                    f.write(b"b" * (40 << 20))
            n = 0
            while chunk := stream.read(1 << 20):
                n += len(chunk)
            return n

        code = "open('a.bin', 'wb').write(b'a' * (40 << 20))\nopen('b.bin', 'wb').write(b'b')"
        r = await m.execute("t", code, sink=sink)
        assert r.error is None, r.error
        assert [(f.name, f.ref) for f in r.files] == [("a.bin", 0)]  # 40 MiB when its copy began
        assert r.file_notes == [
            f"/mnt/data/b.bin was not saved: this execution's files would exceed {64 << 20} bytes in total"
        ]

    run_manager(body, data_mb=64)


def test_output_files_stream_to_the_sink(run_manager):
    async def body(m: SandboxManager):
        reads: list[int] = []

        def sink(name: str, stream) -> str:  # noqa: ANN001
            if name == "refused.txt":
                raise OSError(28, "No space left on device")
            digest = hashlib.sha256()
            while chunk := stream.read(1 << 20):
                reads.append(len(chunk))
                digest.update(chunk)
            return digest.hexdigest()

        code = (
            "import os, hashlib\n"
            "data = os.urandom((5 << 20) + 3)\n"
            "open('big.bin', 'wb').write(data)\n"
            "open('refused.txt', 'w').write('x')\n"
            "hashlib.sha256(data).hexdigest()"
        )
        r = await m.execute("t", code, sink=sink)
        assert r.error is None, r.error
        [big] = r.files
        assert big.name == "big.bin" and big.size == (5 << 20) + 3 and big.data is None
        assert big.ref == r.logs.strip().strip("'")  # the sink saw exactly the file's bytes
        assert max(reads) <= 1 << 20 and len(reads) == 6  # in chunks, never whole
        assert r.file_notes == ["/mnt/data/refused.txt could not be saved: [Errno 28] No space left on device"]

    run_manager(body)


@pytest.mark.skipif(not IS_ROOT, reason="needs per-session uids (root) to find the sandbox's processes")
def test_sandboxes_die_when_the_server_is_killed(tmp_path: Path):
    script = f"""
import asyncio, os, sys
from pathlib import Path
from threadline.sandbox import SandboxManager

async def main():
    m = SandboxManager(root_dir=Path({str(tmp_path)!r}), warm_pool=1)
    await m.start()
    r = await m.execute("t", "import os, subprocess\\nsubprocess.Popen(['sleep', '300'])\\nos.getuid()")
    while not m._pool:
        await asyncio.sleep(0.05)
    print(r.logs.strip(), m._pool[0].uid, flush=True)
    await asyncio.sleep(300)

asyncio.run(main())
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        uids = [int(u) for u in proc.stdout.readline().split()]
        pids = [pid for u in uids for pid in processes_of_uid(u)]
        assert len(uids) == 2 and len(pids) >= 7
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 30
    while still_running(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert still_running(pids) == []
