"""One sandboxed Python session: the bwrap process tree, its REPL, and blocking request/response I/O.

All methods block; the async manager (sessions.py) calls them from worker threads. ``execute`` is serialized
by a per-session lock.

Timeouts and cancellation: when an execution exceeds its wall clock (or its ``cancel`` event is set), SIGINT goes
to the REPL's supervisor only (not to bwrap, whose death would take the sandbox with it), which passes it to the
worker if a cell is running: KeyboardInterrupt in the cell, namespace kept. If no answer arrives within the grace
period, the whole session is killed: SIGKILL to the sandbox's pid-namespace init makes the kernel kill every process
inside, including daemonized children.

Integrity: each request carries an id that its reply must echo (repl.py explains why nothing in the sandbox can
write to this channel); a reply with another id, a malformed one or one longer than ``max_reply_bytes`` ends the
session instead of being read as some other cell's result. Every read from the sandbox is bounded: one reply line,
``max_log_bytes`` of logs and of traceback per cell (the REPL notes the cut), ``max_output_files`` files per cell
of at most ``max_output_file_bytes`` each, streamed in chunks to the caller's sink.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import files as fs
from .bwrap import SANDBOX_DATA_DIR, CgroupV1, Limits, bwrap_argv, data_fd, make_preexec, sandbox_env
from .result import ExecutionResult, InputData, OutputCancelled, OutputFile, OutputSink, SandboxUnavailable

log = logging.getLogger("threadline.sandbox")

_REPL_SOURCE = Path(__file__).with_name("repl.py").read_bytes()
_CLK_TCK = os.sysconf("SC_CLK_TCK")


class SessionDead(Exception):
    pass


class ProtocolError(SessionDead):
    """The REPL's reply was malformed, too long or out of step: the session cannot be trusted any more."""


@dataclass
class SpawnConfig:
    venv: Path
    limits: Limits
    bwrap: str | None  # None: unsandboxed subprocess (explicit unsafe opt-in only)
    seccomp: bytes | None
    cgroups: CgroupV1 | None
    max_log_bytes: int = 100_000
    max_output_file_bytes: int = 512 * 1024 * 1024
    max_output_files: int = 20
    start_timeout_s: float = 30.0
    interrupt_grace_s: float = 3.0
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def max_reply_bytes(self) -> int:
        """Longest reply line: logs and traceback of max_log_bytes each, JSON-escaped (at most 6 bytes per byte)."""
        return 12 * self.max_log_bytes + (1 << 16)


class Session:
    """A running sandbox with a persistent Python namespace."""

    def __init__(self, cfg: SpawnConfig, *, uid: int | None, name: str) -> None:
        self.cfg = cfg
        self.uid = uid  # dedicated uid (root supervisor) or None (sandbox runs as the server's uid)
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None
        self.child_pid: int | None = None  # host pid of the sandbox's pid-namespace init
        self.repl_pid: int | None = None
        self.warm = False
        self.counted = False  # set while the manager counts this sandbox against its capacity
        self.created = time.monotonic()
        self._lock = threading.Lock()
        self._dead = False
        self._killed = False
        self._wfd = -1
        self._rfd = -1
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf known to hold no newline
        self._request_id = 0
        self._errfd = -1
        self._unsafe_dir: Path | None = None
        self._cg_name: str | None = None
        self._oom_base = 0
        self._pidfd = -1

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def spawn(self) -> None:
        """Fork bwrap (fast). bwrap's --die-with-parent ties the sandbox to the calling thread's lifetime."""
        try:
            self._spawn()
        except SessionDead as exc:
            detail = self._stderr_text() or str(exc)
            self.kill()
            raise SandboxUnavailable(f"code interpreter sandbox failed to start: {detail}") from None
        except TimeoutError:
            self.kill()
            raise SandboxUnavailable("code interpreter sandbox did not start in time") from None
        except OSError as exc:
            self.kill()
            raise SandboxUnavailable(f"code interpreter sandbox failed to start: {exc}") from None

    def wait_ready(self) -> None:
        """Wait for the REPL's ready message."""
        try:
            ready = self._read_message(time.monotonic() + self.cfg.start_timeout_s)
        except SessionDead as exc:
            detail = self._stderr_text() or str(exc)
            self.kill()
            raise SandboxUnavailable(f"code interpreter sandbox failed to start: {detail}") from None
        except TimeoutError:
            self.kill()
            raise SandboxUnavailable("code interpreter sandbox did not start in time") from None
        except OSError as exc:
            self.kill()
            raise SandboxUnavailable(f"code interpreter sandbox failed to start: {exc}") from None
        if not ready.get("ready") or ready.get("uid") == 0:
            self.kill()
            raise SandboxUnavailable("refusing to run sandboxed code as root")
        if self.cfg.bwrap is None:
            self.repl_pid = self.child_pid = self.proc.pid
        else:
            self.repl_pid = self._find_repl_pid()
        # Guards /proc/<child_pid>/root against pid reuse (see _open_data_dir).
        with contextlib.suppress(OSError):
            self._pidfd = os.pidfd_open(self.child_pid)

    def _spawn(self) -> None:
        cfg = self.cfg
        if self.uid is not None:
            kill_uid_processes({self.uid})  # leftovers of a server that died while holding this uid
        lim = cfg.limits
        inner_uid = self.uid if self.uid is not None else os.getuid()
        p2c_r, p2c_w = os.pipe()
        c2p_r, c2p_w = os.pipe()
        self._errfd = os.memfd_create("sandbox-stderr", 0)
        close_after: list[int] = [p2c_r, c2p_w]
        cgroup_procs: list[str] = []
        if cfg.cgroups is not None:
            self._cg_name = f"{cfg.cgroups.prefix}-{self.name}"
            cgroup_procs = cfg.cgroups.create(self._cg_name, lim.memory_mb * 1024 * 1024, lim.nproc, lim.cpu_cores)
            self._oom_base = cfg.cgroups.oom_kills(self._cg_name)
        preexec = make_preexec(uid=self.uid, limits=lim, cgroup_procs=cgroup_procs)
        env = sandbox_env(cfg.venv, p2c_r, c2p_w, cfg.max_log_bytes)
        env.update(cfg.extra_env)
        info_r = -1
        try:
            if cfg.bwrap is not None:
                fds = {
                    "repl": data_fd(_REPL_SOURCE, "repl"),
                    "passwd": data_fd(f"sandbox:x:{inner_uid}:{inner_uid}:sandbox:/tmp:/bin/sh\n".encode(), "pw"),
                    "group": data_fd(f"sandbox:x:{inner_uid}:\n".encode(), "grp"),
                    "seccomp": data_fd(cfg.seccomp or b"", "seccomp"),
                }
                info_r, fds["info"] = os.pipe()
                close_after += list(fds.values())
                argv = bwrap_argv(bwrap=cfg.bwrap, venv=cfg.venv, limits=lim, fds=fds, env=env)
                if not cfg.seccomp:
                    i = argv.index("--seccomp")
                    del argv[i : i + 2]
                pass_fds = [p2c_r, c2p_w, *fds.values()]
                self.proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=self._errfd,
                    pass_fds=pass_fds,
                    preexec_fn=preexec,
                    start_new_session=True,
                    env={"PATH": "/usr/bin:/bin"},
                    cwd="/",
                )
            else:
                self._unsafe_dir = Path(tempfile.mkdtemp(prefix="threadline-unsafe-"))
                if self.uid is not None:
                    os.chown(self._unsafe_dir, self.uid, self.uid)
                env["REPL_DATA_DIR"] = str(self._unsafe_dir)
                env["MPLCONFIGDIR"] = str(self._unsafe_dir / ".matplotlib")
                python = cfg.venv / "bin" / "python"
                self.proc = subprocess.Popen(
                    [str(python if python.exists() else sys.executable), "-I", "-B", "-c", _REPL_SOURCE],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=self._errfd,
                    pass_fds=[p2c_r, c2p_w],
                    preexec_fn=preexec,
                    start_new_session=True,
                    env={"PATH": "/usr/bin:/bin", **env},
                    cwd=str(self._unsafe_dir),
                )
        finally:
            for fd in close_after:
                os.close(fd)
        self._wfd, self._rfd = p2c_w, c2p_r
        if info_r >= 0:
            try:
                self.child_pid = self._read_info(info_r, time.monotonic() + self.cfg.start_timeout_s)
            finally:
                os.close(info_r)

    def _read_info(self, fd: int, deadline: float) -> int:
        data = b""
        while True:
            try:
                return int(json.loads(data)["child-pid"])
            except (ValueError, KeyError):
                pass
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], timeout)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise SessionDead("bwrap exited during setup")
                data += chunk

    def _find_repl_pid(self) -> int:
        # The REPL is the only child of bwrap's pid-1 reaper inside the namespace.
        path = f"/proc/{self.child_pid}/task/{self.child_pid}/children"
        for _ in range(200):
            try:
                children = Path(path).read_text().split()
            except OSError:
                children = []
            if children:
                return int(children[0])
            time.sleep(0.005)
        raise SandboxUnavailable("sandbox REPL process not found")

    def _stderr_text(self) -> str:
        if self._errfd < 0:
            return ""
        try:
            return os.pread(self._errfd, 8192, 0).decode("utf-8", "replace").strip()
        except OSError:
            return ""

    def alive(self) -> bool:
        return not self._dead and self.proc is not None and self.proc.poll() is None

    def interrupt(self) -> None:
        """SIGINT to the REPL: KeyboardInterrupt in the running cell, state kept."""
        if self.repl_pid and self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.repl_pid, signal.SIGINT)

    def kill(self) -> None:
        """Tear the session down; no process of it survives (pid-namespace init killed, uid swept)."""
        if self._killed:
            return
        self._killed = True
        self._dead = True
        proc = self.proc
        if proc is not None:
            if self.child_pid:  # killing the namespace init kills everything in the namespace
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.child_pid, signal.SIGKILL)
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            if self.cfg.bwrap is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        if self.uid is not None:
            kill_uid_processes({self.uid})
        for fd in (self._wfd, self._rfd, self._errfd, self._pidfd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._wfd = self._rfd = self._errfd = self._pidfd = -1
        if self._cg_name and self.cfg.cgroups is not None:
            for _ in range(50):
                if self.cfg.cgroups.remove(self._cg_name):
                    break
                time.sleep(0.02)
            else:
                log.warning("sandbox cgroup %s could not be removed", self._cg_name)
        if self._unsafe_dir is not None:
            import shutil

            shutil.rmtree(self._unsafe_dir, ignore_errors=True)

    # ----------------------------------------------------------------- I/O
    def _send(self, obj: dict, deadline: float) -> None:
        data = memoryview((json.dumps(obj) + "\n").encode())
        while data:
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                raise TimeoutError
            _, writable, _ = select.select([], [self._wfd], [], timeout)
            if writable:
                try:
                    n = os.write(self._wfd, data[: 1 << 16])
                except BrokenPipeError:
                    raise SessionDead("the Python process exited") from None
                data = data[n:]

    def _read_message(self, deadline: float, cancel: threading.Event | None = None) -> dict:
        """The next reply line as a dict. Raises TimeoutError at ``deadline``, SessionDead on EOF or a malformed or
        oversized line. Once ``cancel`` is set, the running cell is interrupted, again every 0.2 s until the reply
        comes (the REPL turns only the first SIGINT a cell gets into a KeyboardInterrupt, and ignores those that
        arrive before the cell has started, which is why one is not enough)."""
        limit = self.cfg.max_reply_bytes
        next_interrupt = 0.0
        while True:
            i = self._buf.find(b"\n", self._scanned)
            if i >= 0:
                break
            self._scanned = len(self._buf)
            if len(self._buf) > limit:
                self._dead = True
                raise ProtocolError(f"its reply was longer than {limit} bytes")
            now = time.monotonic()
            if cancel is not None and cancel.is_set() and now >= next_interrupt:
                next_interrupt = now + 0.2
                self.interrupt()
            timeout = deadline - now
            if timeout <= 0:
                raise TimeoutError
            if cancel is not None:
                timeout = min(timeout, 0.05)
            ready, _, _ = select.select([self._rfd], [], [], timeout)
            if not ready:
                continue
            chunk = os.read(self._rfd, min(1 << 20, limit + 1 - len(self._buf)))
            if not chunk:
                self._dead = True
                raise SessionDead("the Python process exited")
            self._buf += chunk
        line = bytes(self._buf[:i])
        del self._buf[: i + 1]
        self._scanned = 0
        try:
            msg = json.loads(line)
        except ValueError:
            self._dead = True
            raise ProtocolError("it sent a malformed reply") from None
        if not isinstance(msg, dict):
            self._dead = True
            raise ProtocolError("it sent a malformed reply")
        return msg

    def _request(self, obj: dict, deadline: float) -> int:
        """Send one request with a fresh id; return the id its reply must carry."""
        self._request_id += 1
        self._send({**obj, "id": self._request_id}, deadline)
        return self._request_id

    def _reply_for(self, request_id: int, deadline: float, cancel: threading.Event | None = None) -> dict:
        reply = self._read_message(deadline, cancel)
        if reply.get("id") != request_id:
            self._dead = True
            raise ProtocolError("it answered out of step")
        return reply

    def data_dir_path(self) -> str:
        if self._unsafe_dir is not None:
            return str(self._unsafe_dir)
        return f"/proc/{self.child_pid}/root{SANDBOX_DATA_DIR}"

    def prelude(self, code: str, timeout_s: float) -> None:
        """Run code in a throwaway namespace (warm pool: import heavy modules ahead of the first request)."""
        with self._lock:
            deadline = time.monotonic() + timeout_s
            reply = self._reply_for(self._request({"op": "prelude", "code": code}, deadline), deadline)
        if reply.get("error"):
            log.warning("sandbox prelude failed: %s", reply["error"])
        self.warm = True

    # ----------------------------------------------------------------- execution
    def execute(
        self,
        code: str,
        input_files: dict[str, InputData] | None,
        timeout_s: float,
        sink: OutputSink | None = None,
        cancel: threading.Event | None = None,
    ) -> ExecutionResult:
        """Run one cell (blocking). ``sink``: where output files go (default: read into OutputFile.data).
        ``cancel``: set it (and call interrupt()) to stop the cell; output files are then not collected."""
        with self._lock:
            if not self.alive():
                raise SessionDead("the Python session is not running")
            t0 = time.monotonic()
            if cancel is not None and cancel.is_set():
                return ExecutionResult(logs="", error="Execution cancelled before it started.", timed_out=False)
            result = self._execute(code, input_files or {}, timeout_s, sink, cancel)
            result.duration_s = time.monotonic() - t0
            return result

    def _open_data_dir(self) -> int:
        try:
            dir_fd = fs.open_dir(self.data_dir_path())
        except OSError:
            raise SessionDead("the sandbox is gone") from None
        if self._pidfd >= 0:
            # The process is still alive after the open, so the pid in the path was not reused by then.
            try:
                signal.pidfd_send_signal(self._pidfd, 0)
            except ProcessLookupError:
                os.close(dir_fd)
                self._dead = True
                raise SessionDead("the sandbox is gone") from None
        return dir_fd

    def _execute(
        self,
        code: str,
        input_files: dict[str, InputData],
        timeout_s: float,
        sink: OutputSink | None,
        cancel: threading.Event | None,
    ) -> ExecutionResult:
        dir_fd = self._open_data_dir()
        result = ExecutionResult(logs="", error=None, timed_out=False)
        try:
            try:
                fs.write_inputs(dir_fd, input_files, self.uid)
            except OSError as exc:
                result.error = f"Could not place the input files in /mnt/data: {exc}"
                result.inputs_placed = False
                return result
            before = fs.snapshot(dir_fd)
            reply, result.timed_out, result.error = self._roundtrip(code, timeout_s, cancel)
            if cancel is None or not cancel.is_set():
                self._collect_outputs(dir_fd, before, sink, cancel, result)
        finally:
            os.close(dir_fd)
        result.logs = _clean(reply.get("logs") or "") if reply else ""
        if reply and reply.get("error"):
            result.error = (result.error + "\n" if result.error else "") + _clean(reply["error"])
        return result

    def _collect_outputs(
        self,
        dir_fd: int,
        before: dict[str, fs.Entry],
        sink: OutputSink | None,
        cancel: threading.Event | None,
        result: ExecutionResult,
    ) -> None:
        """New or changed files since ``before``: the first ``max_output_files`` (oldest change first) go to the
        sink (or into memory); the names of the rest go to ``result.files_dropped``."""
        try:
            after = fs.snapshot(dir_fd)
        except OSError:
            return
        names = fs.changed(before, after)
        cap = self.cfg.max_output_files
        names, result.files_dropped = names[:cap], names[cap:]
        limit = self.cfg.max_output_file_bytes
        budget = self.cfg.max_output_file_bytes  # in total: files can be replaced while they are being copied
        for name in names:
            try:
                fd = fs.open_regular(dir_fd, name)
            except OSError:
                continue  # gone, or replaced by a link since the snapshot
            try:
                size = os.fstat(fd).st_size
                if size > limit:
                    result.file_notes.append(f"/mnt/data/{name} was not saved: {size} bytes is over the {limit} limit")
                    continue
                if size > budget:
                    result.file_notes.append(
                        f"/mnt/data/{name} was not saved: this execution's files would exceed {limit} bytes in total"
                    )
                    continue
                budget -= size
                is_image = fs.is_image(os.pread(fd, 12, 0))
                stream = fs.FileStream(fd, size, cancel)
                if sink is None:
                    data = stream.read()
                    result.files.append(OutputFile(name=name, size=len(data), is_image=is_image, data=data))
                    continue
                try:
                    ref = sink(name, stream)
                except OutputCancelled:
                    return
                except Exception as exc:  # noqa: BLE001 - the blob store or the database failed for this file
                    log.warning("sandbox output %s could not be saved: %s", name, exc)
                    result.file_notes.append(f"/mnt/data/{name} could not be saved: {exc}")
                    continue
                result.files.append(OutputFile(name=name, size=size - stream.remaining, is_image=is_image, ref=ref))
            except OSError:
                continue
            finally:
                os.close(fd)

    def _roundtrip(
        self, code: str, timeout_s: float, cancel: threading.Event | None = None
    ) -> tuple[dict | None, bool, str | None]:
        """Send one cell and wait for its reply: (reply or None, timed out, supervisor-side error text)."""
        deadline = time.monotonic() + timeout_s
        rid = None
        try:
            rid = self._request({"op": "exec", "code": code, "cpu_s": math.ceil(timeout_s) + 5}, deadline)
            reply = self._reply_for(rid, deadline, cancel)
        except TimeoutError:
            pass
        except ProtocolError as exc:
            self.kill()
            return None, False, f"The Python session was terminated ({exc}); variables were lost."
        except (SessionDead, OSError, ValueError):  # OSError/ValueError: fds closed by a concurrent kill()
            self._dead = True
            return None, False, self._death_message()
        else:
            if "died" in reply:
                self._dead = True
                return reply, False, self._death_message(reply["died"])
            return reply, False, None
        # Over the wall clock: interrupt, keep the session if the REPL comes back.
        self.interrupt()
        try:
            if rid is None:  # the request itself could not be written in time: the channel is unusable
                raise SessionDead("request not sent")
            reply = self._reply_for(rid, time.monotonic() + self.cfg.interrupt_grace_s)
            if "died" in reply:
                self._dead = True
                return reply, True, self._death_message(reply["died"])
            note = f"Execution timed out after {timeout_s:g} s and was interrupted (variables kept)."
            return reply, True, note
        except (TimeoutError, SessionDead, OSError, ValueError):
            self.kill()
            return (
                None,
                True,
                (
                    f"Execution timed out after {timeout_s:g} s; the Python session did not stop when interrupted "
                    "and was terminated (variables lost)."
                ),
            )

    def _death_message(self, died: dict | None = None) -> str:
        """Why the session died, for the model; kills what is left of it. ``died``: the REPL's report on its
        worker ({"signal": n} or {"status": n}); without it, bwrap's exit status is used."""
        reason = "it exited or hit a resource limit"
        status = None
        if isinstance(died, dict) and isinstance(died.get("signal"), int):
            status = 128 + died["signal"]
        elif isinstance(died, dict) and isinstance(died.get("status"), int):
            status = died["status"]
        elif self.proc is not None:
            try:
                status = self.proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                status = None
        cg = self.cfg.cgroups
        if self._cg_name and cg is not None and cg.oom_kills(self._cg_name) > self._oom_base:
            reason = f"killed for exceeding the {self.cfg.limits.memory_mb} MB memory limit"
            status = None
        if status is not None:
            sig = status - 128 if status > 128 else -status if status < 0 else 0
            if sig == signal.SIGXCPU:
                reason = "CPU time limit exceeded"
            elif sig == signal.SIGKILL:
                reason = "killed (SIGKILL), most likely for exceeding the memory limit"
            elif sig:
                try:
                    reason = f"killed by signal {signal.Signals(sig).name}"
                except ValueError:
                    reason = f"killed by signal {sig}"
            else:
                reason = f"it exited with status {status}"
        self.kill()
        return f"The Python session died during execution ({reason}); variables were lost."

    def rss_bytes(self) -> int:
        """Resident memory of every process of this session (bwrap helpers included)."""
        if self.proc is None:
            return 0
        total = 0
        todo = [self.proc.pid]
        while todo:
            pid = todo.pop()
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                for task in os.listdir(f"/proc/{pid}/task"):
                    todo += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
            except OSError:
                continue
        return total


def _clean(text: str) -> str:
    """Drop lone surrogates so the text always encodes as UTF-8."""
    return text.encode("utf-8", "replace").decode("utf-8")


def kill_uid_processes(uids: set[int]) -> int:
    """SIGKILL every process owned by one of ``uids`` (dedicated sandbox uids); return how many were found."""
    found = 0
    for _ in range(50):
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.stat(f"/proc/{entry}").st_uid not in uids:
                        continue
                    if Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX":
                        continue  # zombie: already dead, waiting for its parent
                    pids.append(int(entry))
                except (OSError, IndexError):
                    continue
        if not pids:
            return found
        found += len(pids)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)
    log.error("processes of sandbox uids %s survive SIGKILL", sorted(uids))
    return found
