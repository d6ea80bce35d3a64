"""Attacks from inside the sandbox: each must fail, and the host must stay healthy."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from threadline.sandbox import SandboxManager
from threadline.sandbox.bwrap import Limits
from threadline.sandbox.process import Session, SessionDead, SpawnConfig

from .util import IS_ROOT, descendants, processes_of_uid, requires_bwrap, still_running

pytestmark = requires_bwrap


def _ok(r) -> str:
    assert r.error is None, r.error
    assert not r.timed_out
    return r.logs


def test_not_root_no_capabilities_seccomp_active(run_manager):
    async def body(m: SandboxManager):
        logs = _ok(
            await m.execute(
                "t",
                "import os\n"
                "status = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines())\n"
                "print(os.getuid(), os.geteuid(), os.getgid(), os.getgroups())\n"
                "print(status['CapEff'].strip(), status['CapPrm'].strip(), status['Seccomp'].strip(),"
                " status['NoNewPrivs'].strip())",
            )
        )
        ids, caps = logs.splitlines()
        uid, euid, gid, groups = ids.split(" ", 3)
        assert uid != "0" and euid != "0" and gid != "0"
        if IS_ROOT:
            assert int(uid) >= 20000
        assert caps == "0000000000000000 0000000000000000 2 1"

    run_manager(body)


def test_no_network_at_all(run_manager):
    hits: list[bytes] = []
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    port = server.getsockname()[1]
    stop = threading.Event()

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            hits.append(conn.recv(100))
            conn.close()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()

    async def body(m: SandboxManager):
        code = f"""
import socket, subprocess
results = {{}}
def attempt(name, fn):
    try:
        fn()
        results[name] = 'OK'
    except Exception as e:
        results[name] = type(e).__name__ + ':' + str(getattr(e, 'errno', ''))
def tcp_host():
    s = socket.create_connection(('127.0.0.1', {port}), timeout=2); s.sendall(b'hit')
def tcp_out():
    socket.create_connection(('151.101.0.223', 443), timeout=2)
def udp_out():
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('8.8.8.8', 53))
def ipv6():
    socket.socket(socket.AF_INET6, socket.SOCK_STREAM).connect(('::1', {port}))
def dns():
    socket.getaddrinfo('pypi.org', 443)
def netlink():
    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
def packet():
    socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
for name, fn in [('tcp_host', tcp_host), ('tcp_out', tcp_out), ('udp_out', udp_out), ('ipv6', ipv6),
                 ('dns', dns), ('netlink', netlink), ('packet', packet)]:
    attempt(name, fn)
r = subprocess.run(['python', '-c', 'import socket; socket.create_connection(("127.0.0.1", {port}), timeout=2)'],
                   capture_output=True, text=True)
results['child_tcp'] = 'OK' if r.returncode == 0 else r.stderr.strip().splitlines()[-1]
print(open('/proc/net/dev').read().count(':'))  # interfaces: only lo
results
"""
        return _ok(await m.execute("t", code))

    try:
        logs = run_manager(body)
    finally:
        stop.set()
        thread.join()
        server.close()
    iface_count, results = logs.splitlines()
    assert iface_count == "1"
    results = eval(results)  # noqa: S307 - our own dict repr
    assert "OK" not in results.values(), results
    for name in ("tcp_host", "tcp_out", "udp_out", "ipv6", "netlink", "packet"):
        assert results[name].endswith(":97"), results  # EAFNOSUPPORT from the seccomp filter
    assert results["dns"].startswith("gaierror")
    assert "Address family not supported" in results["child_tcp"]
    assert hits == []


def test_host_files_are_invisible_or_unreadable(run_manager, tmp_path: Path):
    secret = tmp_path / "server-data" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("TOP-SECRET")

    async def body(m: SandboxManager):
        code = f"""
import os
out = {{}}
for path in ['/etc/shadow', '/root/.bashrc', {str(secret)!r}, {str(m.root_dir)!r}, '/proc/1/root/etc/shadow',
             '/proc/kcore', '/sys/kernel/notes', '/work', '/home', '/var/lib']:
    try:
        if os.path.isdir(path):
            out[path] = 'LISTED ' + str(os.listdir(path))
        else:
            out[path] = 'READ ' + open(path, 'rb').read(20).decode('latin1')
    except Exception as e:
        out[path] = type(e).__name__
print(out)
print(sorted(os.listdir('/')))
print(sorted(p for p in os.listdir('/proc') if p.isdigit()))
"""
        return _ok(await m.execute("t", code))

    logs = run_manager(body)
    results, root_listing, pids = logs.splitlines()
    results = eval(results)  # noqa: S307
    assert not any(v.startswith(("READ", "LISTED")) for v in results.values()), results
    assert "TOP-SECRET" not in logs
    assert eval(root_listing) == [
        "bin",
        "dev",
        "etc",
        "lib",
        "lib64",
        "mnt",
        "opt",
        "proc",
        "run",
        "sbin",
        "tmp",
        "usr",
    ]
    assert len(eval(pids)) <= 3  # only the sandbox's own processes are visible


def test_cannot_write_outside_mnt_data(run_manager):
    async def body(m: SandboxManager):
        code = f"""
import os
out = {{}}
for path in ['/usr/evil', '/etc/evil', '/evil', '/mnt/evil', {str(m.venv / "evil")!r}, '/opt/evil',
             '/run/threadline/repl.py', '/proc/sys/kernel/hostname', '/etc/passwd']:
    try:
        with open(path, 'w') as f:
            f.write('x')
        out[path] = 'WROTE'
    except Exception as e:
        out[path] = type(e).__name__
open('/tmp/ok.txt', 'w').write('fine')
open('/mnt/data/ok.txt', 'w').write('fine')
out
"""
        return _ok(await m.execute("t", code))

    results = eval(run_manager(body))  # noqa: S307
    assert "WROTE" not in results.values(), results
    assert not Path("/evil").exists() and not Path("/usr/evil").exists()


def test_sessions_cannot_see_each_other(run_manager):
    async def body(m: SandboxManager):
        _ok(await m.execute("alice", "open('secret.txt', 'w').write('alice-secret')\nimport time"))
        code = """
import os, glob
found = []
for pattern in ['/mnt/data/*', '/tmp/*', '/proc/*/root/mnt/data/*', '/proc/*/cwd/*']:
    try:
        found += glob.glob(pattern)
    except Exception:
        pass
hits = []
for path in found:
    try:
        if 'alice-secret' in open(path).read():
            hits.append(path)
    except Exception:
        pass
print(hits)
"""
        return _ok(await m.execute("bob", code))

    assert run_manager(body) == "[]\n"


def test_supervisor_does_not_follow_planted_links(run_manager, tmp_path: Path):
    target = tmp_path / "host-target.txt"
    target.write_text("original")
    target.chmod(0o666)

    async def body(m: SandboxManager):
        # Links to host paths (the supervisor sees /mnt/data through /proc/<pid>/root, so an absolute link would
        # resolve on the host if it were followed).
        code = f"""
import os
os.symlink('/etc/shadow', 'shadow.txt')
os.symlink({str(target)!r}, 'input.csv')
os.mkfifo('pipe.txt')
os.symlink('/etc', 'etcdir')
"""
        r = await m.execute("t", code)
        assert r.error is None, r.error
        assert r.files == []  # links and fifos are never read
        r = await m.execute("t", "open('input.csv').read()", input_files={"input.csv": b"from-engine"})
        assert r.logs == "'from-engine'\n"
        return r

    run_manager(body)
    assert target.read_text() == "original"


def test_fork_bomb_is_contained(run_manager):
    async def body(m: SandboxManager):
        code = """
import os, time
n = 0
err = None
try:
    while n < 10000:
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        n += 1
except OSError as e:
    err = e.errno
(n, err)
"""
        r = await m.execute("t", code, timeout_s=20)
        n, err = eval(r.logs)  # noqa: S307
        assert err == 11 and n < 64, (n, err)  # EAGAIN at the process limit
        pids = descendants(os.getpid())
        await m.close_session("t")
        assert still_running(pids) == []
        # A shell fork bomb in a fresh session: it backgrounds itself, is held at the process limit, and dies
        # with the session.
        uid2 = int(_ok(await m.execute("u", "import os; os.getuid()")))
        r = await m.execute("u", "import subprocess\nsubprocess.run(['bash', '-c', ':(){ :|:& };:'])", timeout_s=30)
        assert r.error is None  # bash puts the bomb in the background and returns at once
        if IS_ROOT:
            for _ in range(200):
                if len(processes_of_uid(uid2)) > 8:
                    break
                await asyncio.sleep(0.1)
            assert 8 < len(processes_of_uid(uid2)) <= 32  # the bomb is running, held at the limit
        assert os.getloadavg()[0] < 50
        assert (await m.execute("u", "1 + 1")).logs == "2\n"  # the session still answers
        pids = descendants(os.getpid())
        await m.close_session("u")
        assert still_running(pids) == [] and descendants(os.getpid()) == []

    run_manager(body, nproc=32)


def test_memory_bomb_single_process(run_manager):
    async def body(m: SandboxManager):
        _ok(await m.execute("t", "x = 'still here'"))
        r = await m.execute("t", "b = bytearray(2 << 30)")
        assert "MemoryError" in r.error
        r = await m.execute("t", "import numpy as np\na = np.ones(2**28)")
        assert "MemoryError" in r.error or "Unable to allocate" in r.error
        r = await m.execute("t", "x")
        assert r.logs == "'still here'\n"

    run_manager(body, memory_mb=256)


def test_memory_bomb_across_forked_children(run_manager):
    async def body(m: SandboxManager):
        if not m.cgroups_enabled:
            pytest.skip("cgroup v1 memory controller unavailable: only the per-process limit applies")
        code = """
import os
pids = []
for i in range(6):
    pid = os.fork()
    if pid == 0:
        try:
            b = bytearray(200 * 1024 * 1024)  # under the per-process AS limit, over the session limit together
            for j in range(0, len(b), 4096):
                b[j] = 1
            import time; time.sleep(2)
        finally:
            os._exit(0)
    pids.append(pid)
statuses = [os.waitpid(p, 0)[1] for p in pids]
print(sum(1 for s in statuses if os.WIFSIGNALED(s) and os.WTERMSIG(s) == 9), 'killed')
"""
        r = await m.execute("t", code, timeout_s=30)
        if r.error is None:
            killed = int(r.logs.split()[0])
            assert killed >= 2, r.logs  # 6 x 200 MB cannot fit in 512 MB
        else:  # the OOM killer may also pick the REPL itself
            assert "memory limit" in r.error or "died" in r.error, r.error
        r = await m.execute("t", "print('alive')")
        assert r.logs == "alive\n"

    run_manager(body, memory_mb=512)


def test_disk_fill_is_capped(run_manager, tmp_path: Path):
    async def body(m: SandboxManager):
        code = """
import os
written = 0
err = None
try:
    with open('big.bin', 'wb') as f:
        while written < 1 << 30:
            f.write(b'\\0' * (1 << 20)); written += 1 << 20
except OSError as e:
    err = e.errno
try:
    with open('/tmp/big.bin', 'wb') as f:
        for _ in range(1024):
            f.write(b'\\0' * (1 << 20))
except OSError as e:
    tmp_err = e.errno
os.remove('/tmp/big.bin')
(written >> 20, err, tmp_err)
"""
        r = await m.execute("t", code, timeout_s=30)
        assert r.error is None, r.error
        mb, err, tmp_err = eval(r.logs)  # noqa: S307
        assert err in (27, 28) and mb <= 64, (mb, err)  # EFBIG / ENOSPC
        assert tmp_err in (27, 28)
        assert [f.name for f in r.files] == ["big.bin"] and len(r.files[0].data) <= 64 << 20
        r = await m.execute("t", "import os; os.remove('big.bin'); 'ok'")
        assert r.logs == "'ok'\n"

    run_manager(body, data_mb=64)


def test_cpu_and_wall_clock_limits(run_manager):
    async def body(m: SandboxManager):
        logs = _ok(
            await m.execute(
                "t",
                "import resource\nsoft, hard = resource.getrlimit(resource.RLIMIT_CPU)\n"
                "try:\n    resource.setrlimit(resource.RLIMIT_CPU, (hard + 100, hard + 100)); raised = True\n"
                "except ValueError:\n    raised = False\n"
                "from resource import getrlimit, RLIMIT_NPROC, RLIMIT_CORE\n"
                "(soft, hard, raised, getrlimit(RLIMIT_NPROC)[0], getrlimit(RLIMIT_CORE))",
            )
        )
        soft, hard, raised, nproc, core = eval(logs)  # noqa: S307
        assert 0 < soft <= 40 and hard == 4 * 3600 and not raised and core == (0, 0)  # budget: wall clock + 5 s
        if IS_ROOT:
            assert nproc == 64
        t0 = time.monotonic()
        r = await m.execute("t", "import time\ntime.sleep(100)", timeout_s=1.5)
        assert r.timed_out and time.monotonic() - t0 < 30  # interrupted, not slept out
        r = await m.execute("t", "sum(range(10**9))", timeout_s=1.5)
        assert r.timed_out
        # The hard CPU limit cannot be raised from inside.
        code = (
            "import subprocess, sys\n"
            "p = subprocess.run([sys.executable, '-c', 'import resource; "
            "resource.setrlimit(resource.RLIMIT_CPU, (1, resource.RLIM_INFINITY))'], capture_output=True)\n"
            "p.returncode, p.stderr[-60:]"
        )
        r = await m.execute("t", code)
        assert "not allowed to raise maximum limit" in r.logs or "ValueError" in r.logs, r.logs

    run_manager(body, wall_clock_s=30)


def test_daemonized_children_die_with_the_session(run_manager):
    async def body(m: SandboxManager):
        code = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.closerange(0, 1024)
        time.sleep(600)
    os._exit(0)
time.sleep(0.2)
os.getuid()
"""
        uid = int(_ok(await m.execute("t", code)))
        if IS_ROOT:
            assert len(processes_of_uid(uid)) >= 4  # bwrap, bwrap init, REPL, daemon
        pids = descendants(os.getpid())
        assert len(pids) >= 4
        await m.close_session("t")
        assert still_running(pids) == [] and descendants(os.getpid()) == []

    run_manager(body)


def test_dangerous_syscalls_fail(run_manager):
    async def body(m: SandboxManager):
        code = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def call(name, *args):
    r = getattr(libc, name)(*args)
    return (r, ctypes.get_errno())
out = {
    'ptrace': call('ptrace', 16, os.getppid(), 0, 0),          # PTRACE_ATTACH
    'unshare_user': call('unshare', 0x10000000),
    'unshare_net': call('unshare', 0x40000000),
    'mount': call('mount', b'none', b'/tmp', b'tmpfs', 0, None),
    'io_uring_setup': call('syscall', 425, 8, ctypes.create_string_buffer(120)),
    'bpf': call('syscall', 321, 0, None, 0),
    'keyctl': call('syscall', 250, 0, 0, 0),
    'chroot': call('chroot', b'/tmp'),
}
out
"""
        return eval(_ok(await m.execute("t", code)))  # noqa: S307

    results = run_manager(body)
    assert all(rc == -1 and err in (1, 38) for rc, err in results.values()), results  # EPERM / ENOSYS


def test_background_spinners_are_throttled_and_stopped(run_manager):
    async def body(m: SandboxManager):
        start = (
            "import subprocess, sys\n"
            "spin = [subprocess.Popen([sys.executable, '-c', 'while True: pass']) for _ in range({n})]"
        )
        # A cell that leaves CPU burners behind returns at once; the burners are not under the wall clock.
        _ok(await m.execute("t", start.format(n=2), timeout_s=30))
        cgroups = m._cfg.cgroups if m.cgroups_enabled else None
        if cgroups is not None and cgroups.cpu_parent is not None:
            session = m._sessions["t"].session
            cg = cgroups.cpu_parent / f"{cgroups.prefix}-{session.name}"
            period = int((cg / "cpu.cfs_period_us").read_text())
            assert int((cg / "cpu.cfs_quota_us").read_text()) == period  # one core per session
            if IS_ROOT:
                cpu0, t0 = _cpu_seconds(processes_of_uid(session.uid)), time.monotonic()
                await asyncio.sleep(1.5)
                cores = (_cpu_seconds(processes_of_uid(session.uid)) - cpu0) / (time.monotonic() - t0)
                assert cores < 1.3, cores  # two burners share one core of quota (not two cores)
        _ok(await m.execute("t", "for p in spin: p.kill()"))
        # Each process inherits a CPU budget of (wall clock + 5 s): a lone burner gets SIGXCPU.
        _ok(await m.execute("t", start.format(n=1), timeout_s=3))
        for _ in range(600):  # 9 CPU-seconds can take minutes of wall clock on a busy machine
            await asyncio.sleep(0.5)
            status = _ok(await m.execute("t", "spin[0].poll()"))
            if status != "":
                break
        assert status == "-24\n", status  # SIGXCPU

    run_manager(body)


def _cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


# Forged replies in every shape the channel has had: a line per reply id (old and new protocol), and the worker's
# "finished" message with guessed tokens. Written to every fd of every process the sandbox can see (its own fds 0-2
# are the cell's output by design and are left out), then again and again by a background process, so that later
# cells are attacked too.
FORGE = r"""
import json, os, socket, time

def payloads():
    lines = [json.dumps({"id": i, "logs": "FORGED", "error": None}) for i in range(64)]
    lines.append(json.dumps({"logs": "FORGED", "error": None, "images": []}))
    lines.append(json.dumps({"ready": True, "uid": 0, "pid": 1}))
    done = [json.dumps({"done": t, "error": "FORGED"}).encode() for t in (None, "", "0" * 32, 1)]
    return ("\n".join(lines) + "\n").encode(), done

def attack():
    text, done = payloads()
    report = {"written": 0, "denied": []}
    for pid in sorted(p for p in os.listdir("/proc") if p.isdigit()):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError as e:
            report["denied"].append((int(pid), type(e).__name__))
            continue
        for name in fds:
            if int(pid) == os.getpid():
                if int(name) <= 2:
                    continue
                fd = int(name)
            else:
                try:
                    fd = os.open(f"/proc/{pid}/fd/{name}", os.O_WRONLY | os.O_NONBLOCK)
                except OSError:
                    continue
            for data in [text, *done]:
                try:
                    os.write(fd, data)
                    report["written"] += 1
                except OSError:
                    pass
            if int(pid) != os.getpid():
                os.close(fd)
    return report

report = attack()
if os.fork() == 0:  # keeps attacking while the next cells run
    try:
        for _ in range(200):
            attack()
            time.sleep(0.05)
    finally:
        os._exit(0)
print("real", os.getppid(), report["written"] > 0, report["denied"])
"""


def test_forged_replies_are_never_shown(run_manager):
    async def body(m: SandboxManager):
        r = await m.execute("t", "secret = 'kept'")
        r = await m.execute("t", FORGE)
        assert r.error is None, r.error
        assert "FORGED" not in r.logs
        word, ppid, wrote, denied = r.logs.split(" ", 3)
        assert word == "real" and wrote == "True"
        # The REPL's supervisor (the worker's parent) holds the server's channel: its fds cannot even be listed.
        assert (int(ppid), "PermissionError") in eval(denied)  # noqa: S307 - our own list repr
        for i in range(5):  # later cells, while the background process keeps forging
            r = await m.execute("t", f"import time\ntime.sleep(0.2)\nprint({i}, secret)")
            assert r.logs == f"{i} kept\n" and r.error is None, (r.logs, r.error)
        assert not r.session_restarted

    run_manager(body)


def test_a_cell_that_ends_itself_early_leaves_the_session_in_step(run_manager):
    async def body(m: SandboxManager):
        # Code in the REPL process can read the running cell's token from the REPL's own frames and announce the
        # end of its cell early (as it could rewrite the REPL). That cell's result is then cut short, but its late
        # output is never shown, and later cells get their own results.
        code = (
            "import json, os, sys, time\n"
            "f = sys._getframe()\n"
            "while f is not None and 'req' not in f.f_locals:\n"
            "    f = f.f_back\n"
            "token = f.f_locals['req']['token']\n"
            "print('early')\n"
            "for fd in map(int, os.listdir('/proc/self/fd')):\n"
            "    try:\n"
            "        os.write(fd, json.dumps({'done': token, 'error': None}).encode()) if fd > 2 else None\n"
            "    except OSError:\n"
            "        pass\n"
            "time.sleep(1.5)\n"
            "print('LATE')\n"
        )
        r = await m.execute("t", code, timeout_s=30)
        assert r.logs == "early\n" and r.error is None
        for i in range(4):
            r = await m.execute("t", f"print({i})", timeout_s=30)
            assert r.logs == f"{i}\n" and r.error is None, (r.logs, r.error)

    run_manager(body)


def test_flooding_every_reachable_fd_is_harmless(run_manager):
    async def body(m: SandboxManager):
        code = (
            "import os\n"
            "fds = [int(n) for n in os.listdir('/proc/self/fd') if int(n) > 2]\n"
            "chunk = b'x' * (1 << 20)\n"
            "written = 0\n"
            "for _ in range(64):\n"
            "    for fd in fds:\n"
            "        try:\n"
            "            written += os.write(fd, chunk)\n"
            "        except OSError:\n"
            "            pass\n"
            "print('flooded', written >= 64 << 20)\n"
        )
        r = await m.execute("t", code)
        assert r.logs == "flooded True\n" and r.error is None
        r = await m.execute("t", "print('next')")
        assert r.logs == "next\n"

    run_manager(body)


def test_reply_reader_is_bounded():
    """The server never buffers more than one maximal reply line, however much the other end writes."""
    cfg = SpawnConfig(venv=Path("/nonexistent"), limits=Limits(), bwrap=None, seccomp=None, cgroups=None)
    cfg.max_log_bytes = 1000
    session = Session(cfg, uid=None, name="bounded")
    rfd, wfd = os.pipe()
    session._rfd = rfd

    def flood() -> None:
        chunk = b"x" * (1 << 20)
        with contextlib.suppress(OSError):
            for _ in range(256):
                os.write(wfd, chunk)
        os.close(wfd)

    writer = threading.Thread(target=flood)
    writer.start()
    try:
        with pytest.raises(SessionDead, match="longer than"):
            session._read_message(time.monotonic() + 60)
        assert len(session._buf) <= cfg.max_reply_bytes + 1
    finally:
        os.close(rfd)
        writer.join()


def test_death_of_the_worker_is_reported_with_its_output(run_manager):
    async def body(m: SandboxManager):
        r = await m.execute("t", "import os\nprint('before', flush=True)\nos.kill(os.getpid(), 9)")
        assert r.logs == "before\n" and "SIGKILL" in r.error
        r = await m.execute("t", "print('after')")
        assert r.logs == "after\n" and r.session_restarted
        # Closing the worker's end of its channel to the supervisor ends the session instead of hanging it.
        code = (
            "import os, time\nfor fd in range(3, 64):\n    try:\n        os.close(fd)\n    except OSError:\n"
            "        pass\n"
        )
        r = await m.execute("t", code + "time.sleep(120)", timeout_s=300)
        assert not r.timed_out and "died" in r.error and not m.has_session("t")
        r = await m.execute("t", "print('again')")
        assert r.logs == "again\n" and r.session_restarted

    run_manager(body)
