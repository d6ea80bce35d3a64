"""The Python REPL that runs inside the code_interpreter sandbox.

This file is executed by the sandbox's own interpreter (standard library only); the server never imports it.

Two processes, so that nothing user code can reach is ever read as a reply:

- The **supervisor** (``main()``, the process bwrap starts) owns the pipes to the server: it reads one JSON request
  per line from ``REPL_RFD`` and writes one JSON reply per line to ``REPL_WFD``. It runs no user code and makes
  itself non-dumpable, so the other processes of the sandbox (same uid, no capabilities) cannot open its
  ``/proc/<pid>/fd`` entries or its memory; seccomp forbids ptrace.
- The **worker**, forked by the supervisor before any user code runs (with the server's pipes closed), runs every
  cell in the persistent namespace. It talks to the supervisor over a SOCK_SEQPACKET socket pair; for each cell
  the supervisor hands it two fresh memfds: the code and the output (fds 1 and 2 during the cell, and nowhere
  else). It is non-dumpable as well, so a background process left by an earlier cell cannot reopen the current
  cell's output through ``/proc/<pid>/fd``.

The supervisor builds every reply itself: the logs are read from the output memfd it created for that cell, the
traceback comes with the worker's "cell finished" message; each is truncated to ``REPL_MAX_LOG`` bytes (head and
tail kept, with a note). That message is accepted only if the kernel says it came from the worker process
(SCM_CREDENTIALS, so no background process can send one) and it carries that cell's random token; anything else is
dropped. Each reply echoes the request's
``id``, and exactly one reply is sent per request. Code inside the worker can still end its own cell early, as it
can rewrite the REPL it runs in; it cannot touch another cell's reply or the server's channel.

Requests:
  {"op": "exec", "id": n, "code": "...", "cpu_s": s}   run a cell in the persistent namespace
  {"op": "prelude", "id": n, "code": "..."}            run code in a throwaway namespace (warm pool imports)
Replies: first {"ready": true, "uid": ..., "pid": ...}; then per request
  {"id": n, "logs": str, "error": str | null}
or, if the worker died, {"id": n, "died": {"signal": k} | {"status": k}, "logs": str, "error": null} after which
the supervisor exits.

A cell is parsed once; if its last statement is an expression, the rest is executed and the expression is then
evaluated and its repr() printed (like a notebook cell). Output of C extensions and of subprocesses is captured in
order with Python's own prints. The supervisor turns a SIGINT into a SIGINT to the worker only while a cell is in
flight, and the worker raises KeyboardInterrupt only while a cell runs, so an interrupt that races with the end of a
cell cannot corrupt the protocol.
"""

import ast
import contextlib
import ctypes
import io
import json
import linecache
import os
import resource
import secrets
import select
import signal
import socket
import struct
import sys
import traceback
import types

_THIS_FILE = sys._getframe().f_code.co_filename
_running = False
_cell_no = 0
_plot_no = 0


def _on_sigint(signum, frame):
    global _running
    if _running:
        _running = False  # one KeyboardInterrupt per cell: a second SIGINT cannot hit the REPL's own handling
        raise KeyboardInterrupt


def _close_other_fds(keep):
    keep = sorted(k for k in keep if k > 2)
    lo = 3
    for fd in keep:
        if fd > lo:
            os.closerange(lo, fd)
        lo = fd + 1
    os.closerange(lo, 65536)


def _save_open_figures(data_dir):
    """Save every open matplotlib figure as plot_<n>.png in data_dir, then close it."""
    global _plot_no
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return []
    saved = []
    for num in plt.get_fignums():
        fig = plt.figure(num)
        if getattr(fig, "_threadline_saved", False):
            plt.close(fig)  # the code saved this figure itself: don't hand it out twice
            continue
        while True:
            _plot_no += 1
            name = f"plot_{_plot_no}.png"
            if not os.path.lexists(os.path.join(data_dir, name)):
                break
        try:
            fig.savefig(os.path.join(data_dir, name), format="png", bbox_inches="tight")
            saved.append(name)
        finally:
            plt.close(fig)
    return saved


def _mark_saved_figures():
    """Remember which figures the code saved itself (Figure.savefig), so they are not auto-saved again."""
    from matplotlib.figure import Figure

    if getattr(Figure.savefig, "_threadline", False):
        return
    original = Figure.savefig

    def savefig(self, *args, **kwargs):
        self._threadline_saved = True
        return original(self, *args, **kwargs)

    savefig._threadline = True
    Figure.savefig = savefig


def _install_mpl_backend(data_dir, saved):
    """A matplotlib backend (MPLBACKEND=module://threadline_mpl_backend) whose show() saves the figures.

    Resolved lazily, so matplotlib is imported only when the user's code imports it.
    """
    mod = types.ModuleType("threadline_mpl_backend")

    def __getattr__(name):
        # First access comes from matplotlib's switch_backend(); it then copies vars(module), so the real
        # attributes must be in the module dict from here on.
        if name in ("FigureCanvas", "FigureManager"):
            from matplotlib.backends import backend_agg

            mod.FigureCanvas = backend_agg.FigureCanvas
            mod.FigureManager = backend_agg.FigureManager
            _mark_saved_figures()
            return getattr(mod, name)
        raise AttributeError(name)

    def show(*args, **kwargs):
        saved.extend(_save_open_figures(data_dir))

    mod.__getattr__ = __getattr__
    mod.show = show
    sys.modules[mod.__name__] = mod


def _format_exception(exc):
    """The traceback as Python would print it, without the REPL's own frames."""
    te = traceback.TracebackException(type(exc), exc, exc.__traceback__, compact=True)
    seen = set()
    todo = [te]
    while todo:
        cur = todo.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        cur.stack = traceback.StackSummary.from_list([f for f in cur.stack if f.filename != _THIS_FILE])
        todo += [c for c in (cur.__cause__, cur.__context__) if c is not None]
    return "".join(te.format())


def _set_cpu_budget(seconds):
    """Soft RLIMIT_CPU = CPU used so far + budget (SIGXCPU if a cell burns more); the hard limit stays."""
    t = os.times()
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    soft = int(t.user + t.system + seconds) + 1
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _read_output(fd, limit, what="output"):
    """The memfd's content as text, at most ``limit`` bytes of it: head and tail, with a note on what was cut."""
    size = os.fstat(fd).st_size
    if size <= limit:
        data = os.pread(fd, size, 0)
    else:
        half = limit // 2
        head = os.pread(fd, half, 0)
        tail = os.pread(fd, half, size - half)
        data = head + b"\n...[%d bytes of %s truncated]...\n" % (size - 2 * half, what.encode()) + tail
    return data.decode("utf-8", errors="replace")


def _run_code(code, namespace):
    """Compile and run one cell; echo the value of a trailing expression."""
    global _cell_no
    _cell_no += 1
    filename = f"<cell-{_cell_no}>"
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    tree = ast.parse(code, filename, "exec")
    last = None
    # A trailing ";" suppresses the echo, as in notebooks.
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not code.rstrip().endswith(";"):
        last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, filename, "exec"), namespace)
    if last is not None:
        value = eval(compile(last, filename, "eval"), namespace)
        if value is not None:
            namespace["_"] = value
            print(repr(value))


def _cell(code, out, cpu_s, namespace, state):
    """Run one cell with fds 1 and 2 on ``out`` (closed here); return the traceback text or None."""
    global _running
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)  # fds 1 and 2 are the only way to the cell's output
    sys.stdout, sys.stderr = state["stdout"], state["stderr"]
    if cpu_s:
        _set_cpu_budget(cpu_s)
    error = None
    signal.signal(signal.SIGINT, _on_sigint)
    try:
        _running = True
        try:
            _run_code(code, namespace)
        finally:
            _save_open_figures(state["data_dir"])
    except BaseException as exc:  # noqa: BLE001 - user code may raise anything, including SystemExit
        _running = False
        try:
            error = _format_exception(exc)
        except BaseException as fmt_exc:  # noqa: BLE001
            error = f"{type(exc).__name__}: {exc} (traceback unavailable: {fmt_exc!r})"
    finally:
        _running = False
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os.dup2(state["devnull"], 1)
    os.dup2(state["devnull"], 2)
    return error


def _copy_font_cache():
    """Seed MPLCONFIGDIR with the font cache prebuilt by the setup script (saves ~0.5 s on the first plot)."""
    src = os.environ.get("REPL_MPL_CACHE")
    dst = os.environ.get("MPLCONFIGDIR")
    if not src or not dst or not os.path.isdir(src):
        return
    os.makedirs(dst, exist_ok=True)
    for name in os.listdir(src):
        if name.startswith("fontlist") and not os.path.exists(os.path.join(dst, name)):
            with open(os.path.join(src, name), "rb") as f_in, open(os.path.join(dst, name), "wb") as f_out:
                f_out.write(f_in.read())


_PR_SET_DUMPABLE = 4
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_MSG_MAX = 1 << 16  # worker <-> supervisor messages; code and output travel in memfds
_ERROR_MAX = 8192  # characters of a traceback the worker sends (head and tail): at most 6 bytes each in JSON


def _set_dumpable(on):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_DUMPABLE, 1 if on else 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE)")


def _memfd_with(data):
    fd = os.memfd_create("cell-code", 0)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    return fd


def _read_all(fd):
    size = os.fstat(fd).st_size
    chunks = []
    offset = 0
    while offset < size:
        chunk = os.pread(fd, min(size - offset, 1 << 20), offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


# ----------------------------------------------------------------------------------------------------- worker
def _worker(sock, data_dir):
    """The worker's main loop: receive a cell (token + code and output memfds), run it, say it finished."""
    _close_other_fds({sock.fileno()})
    with contextlib.suppress(OSError):  # under memory pressure, the OOM killer should pick this process first
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("500")
    signal.signal(signal.SIGINT, _on_sigint)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="replace", write_through=True)
    stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace", write_through=True
    )
    sys.stdout, sys.stderr = stdout, stderr
    if "" not in sys.path:
        sys.path.insert(0, "")
    with contextlib.suppress(OSError):
        _copy_font_cache()
    state = {"stdout": stdout, "stderr": stderr, "devnull": devnull, "data_dir": data_dir}
    _install_mpl_backend(data_dir, [])
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    sock.send(json.dumps({"ready": True, "uid": os.getuid(), "pid": os.getpid()}).encode())
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, _MSG_MAX, 2)
        except OSError:
            return
        if not msg:
            return
        try:
            req = json.loads(msg)
            code_fd, out = fds
        except ValueError:
            for fd in fds:
                os.close(fd)
            continue
        try:
            code = _read_all(code_fd).decode("utf-8", "surrogatepass")
        finally:
            os.close(code_fd)
        if req.get("op") == "prelude":
            error = _cell(code, out, None, {"__name__": "__prelude__", "__builtins__": __builtins__}, state)
        else:
            error = _cell(code, out, req.get("cpu_s"), namespace, state)
        if error is not None and len(error) > _ERROR_MAX:
            cut = f"\n...[{len(error) - _ERROR_MAX} characters of traceback truncated]...\n"
            error = error[: _ERROR_MAX // 2] + cut + error[-_ERROR_MAX // 2 :]
        try:
            reply = json.dumps({"done": req.get("token"), "error": error}, ensure_ascii=False)
            sock.send(reply.encode("utf-8", "replace"))
        except OSError:
            return


# ------------------------------------------------------------------------------------------------- supervisor
class _Supervisor:
    def __init__(self, rfd, wfd, sock, worker_pid, max_log):
        self.rfd = rfd
        self.wfd = wfd
        self.sock = sock
        self.worker_pid = worker_pid
        self.max_log = max_log
        self.cell = None  # the request in flight: {"id", "token", "out"}
        self.buf = bytearray()

    def send(self, obj):
        data = memoryview((json.dumps(obj) + "\n").encode())
        while data:
            data = data[os.write(self.wfd, data) :]

    def on_sigint(self, signum, frame):
        if self.cell is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.worker_pid, signal.SIGINT)

    def worker_message(self):
        """One message from the worker, if it really is from the worker process: (decoded JSON or None)."""
        try:
            msg, anc, flags, _ = self.sock.recvmsg(_MSG_MAX, socket.CMSG_SPACE(_UCRED.size))
        except BlockingIOError:
            return None
        if not msg and not anc:
            # End of file (an empty message would still carry credentials): the worker closed its end, so it can
            # never report a cell again. Ending it lets the pidfd branch report the session as dead.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.worker_pid, signal.SIGKILL)
            return None
        pid = None
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(data) >= _UCRED.size:
                pid = _UCRED.unpack_from(data)[0]
        if pid != self.worker_pid or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or not msg:
            return None
        try:
            obj = json.loads(msg)
        except ValueError:
            return None
        return obj if isinstance(obj, dict) else None

    def start_cell(self, req):
        if self.cell is not None:  # the server never overlaps requests; if it did, the first one wins
            return
        op = req.get("op")
        if op not in ("exec", "prelude"):
            self.send({"id": req.get("id"), "logs": "", "error": f"unknown op {op!r}"})
            return
        token = secrets.token_hex(16)
        code_fd = _memfd_with(str(req.get("code", "")).encode("utf-8", "surrogatepass"))
        out = os.memfd_create("cell-output", 0)
        try:
            msg = json.dumps({"op": op, "token": token, "cpu_s": req.get("cpu_s")}).encode()
            socket.send_fds(self.sock, [msg], [code_fd, out])
        except OSError:
            os.close(out)
            return  # the worker is gone: its exit is reported by the pidfd branch
        finally:
            os.close(code_fd)
        self.cell = {"id": req.get("id"), "token": token, "out": out}

    def finish_cell(self, error=None, **extra):
        cell, self.cell = self.cell, None
        reply = {"id": cell["id"], "logs": _read_output(cell["out"], self.max_log), "error": None}
        if isinstance(error, str) and error:
            data = error.encode("utf-8", "replace")
            if len(data) > self.max_log:
                half = self.max_log // 2
                cut = len(data) - 2 * half
                data = data[:half] + b"\n...[%d bytes of traceback truncated]...\n" % cut + data[-half:]
            reply["error"] = data.decode("utf-8", "replace")
        reply.update(extra)
        os.close(cell["out"])
        self.send(reply)

    def run(self, pidfd):
        while True:
            ready, _, _ = select.select([self.rfd, self.sock, pidfd], [], [])
            if pidfd in ready:
                return self.worker_exited()
            if self.sock in ready:
                msg = self.worker_message()
                if msg is not None and self.cell is not None and msg.get("done") == self.cell["token"]:
                    self.finish_cell(msg.get("error"))
            if self.rfd in ready:
                chunk = os.read(self.rfd, 1 << 16)
                if not chunk:
                    return 0  # the server closed the channel
                self.buf += chunk
                while True:
                    i = self.buf.find(b"\n")
                    if i < 0:
                        break
                    line = bytes(self.buf[:i])
                    del self.buf[: i + 1]
                    self.start_cell(json.loads(line))

    def worker_exited(self):
        _, status = os.waitpid(self.worker_pid, 0)
        if os.WIFSIGNALED(status):
            died, code = {"signal": os.WTERMSIG(status)}, 128 + os.WTERMSIG(status)
        else:
            died, code = {"status": os.WEXITSTATUS(status)}, os.WEXITSTATUS(status) or 1
        if self.cell is not None:
            self.finish_cell(died=died)
        return code


def main():
    rfd = int(os.environ.pop("REPL_RFD"))
    wfd = int(os.environ.pop("REPL_WFD"))
    data_dir = os.environ.pop("REPL_DATA_DIR", None) or os.getcwd()
    max_log = int(os.environ.pop("REPL_MAX_LOG", "100000"))
    _close_other_fds({rfd, wfd})
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _set_dumpable(False)  # before the worker exists: no process of the sandbox can ever open our fds
    sup_sock, worker_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sup_sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(rfd)
            os.close(wfd)
            sup_sock.close()
            # The worker stays non-dumpable too, so processes it forks cannot reopen its fds (a later cell's
            # output) through /proc/<pid>/fd. Programs it executes are dumpable again (execve resets the flag).
            _worker(worker_sock, data_dir)
        finally:
            os._exit(0)
    worker_sock.close()
    pidfd = os.pidfd_open(pid)
    sup = _Supervisor(rfd, wfd, sup_sock, pid, max_log)
    # The first message is the worker's ready message (or its death).
    while True:
        ready, _, _ = select.select([sup_sock, pidfd], [], [])
        if pidfd in ready:
            sup.worker_exited()
            os._exit(1)
        msg = sup.worker_message()
        if msg is not None and msg.get("ready"):
            break
    sup_sock.setblocking(False)
    signal.signal(signal.SIGINT, sup.on_sigint)
    sup.send({"ready": True, "uid": msg.get("uid"), "pid": os.getpid()})
    code = sup.run(pidfd)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    os._exit(code)


if __name__ == "__main__":
    main()
