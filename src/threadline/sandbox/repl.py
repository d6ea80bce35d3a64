"""The Python REPL that runs inside the code_interpreter sandbox.

This file is executed by the sandbox's own interpreter (standard library only); the supervisor never imports it.
Protocol: the supervisor writes one JSON request per line to the inherited fd ``REPL_RFD`` and reads one JSON
response per line from ``REPL_WFD``. The first line the REPL writes is ``{"ready": true, "uid": ..., "pid": ...}``.

Requests:
  {"op": "exec", "code": "..."}     run a cell in the persistent namespace
  {"op": "prelude", "code": "..."}  run code in a throwaway namespace (warm pool: pre-import modules)
Response: {"logs": str, "error": str | null, "images": [names of auto-saved figures]}

A cell is parsed once; if its last statement is an expression, the rest is executed and the expression is then
evaluated and its repr() printed (like a notebook cell). For each cell, fds 1 and 2 point at a fresh memfd, so
output of C extensions and of subprocesses is captured in order with Python's own prints. SIGINT raises
KeyboardInterrupt only while a cell runs; between cells it is ignored, so an interrupt that races with the end of
a cell cannot corrupt the protocol.
"""

import ast
import contextlib
import io
import json
import linecache
import os
import resource
import signal
import sys
import traceback
import types

_THIS_FILE = sys._getframe().f_code.co_filename
_running = False
_cell_no = 0
_plot_no = 0


def _on_sigint(signum, frame):
    if _running:
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


def _read_output(fd, limit):
    size = os.fstat(fd).st_size
    if size <= limit:
        data = os.pread(fd, size, 0)
    else:
        half = limit // 2
        head = os.pread(fd, half, 0)
        tail = os.pread(fd, half, size - half)
        data = head + b"\n...[%d bytes of output truncated]...\n" % (size - 2 * half) + tail
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


def _cell(req, namespace, state):
    global _running
    out = os.memfd_create("cell-output", 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    sys.stdout, sys.stderr = state["stdout"], state["stderr"]
    saved = state["saved"]
    del saved[:]
    if req.get("cpu_s"):
        _set_cpu_budget(req["cpu_s"])
    error = None
    signal.signal(signal.SIGINT, _on_sigint)
    try:
        _running = True
        try:
            _run_code(req["code"], namespace)
        finally:
            saved.extend(_save_open_figures(state["data_dir"]))
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
    logs = _read_output(out, state["max_log"])
    os.close(out)
    return {"logs": logs, "error": error, "images": list(saved)}


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


def main():
    rfd = int(os.environ.pop("REPL_RFD"))
    wfd = int(os.environ.pop("REPL_WFD"))
    data_dir = os.environ.pop("REPL_DATA_DIR", None) or os.getcwd()
    max_log = int(os.environ.pop("REPL_MAX_LOG", "100000"))
    _close_other_fds({rfd, wfd})
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
    state = {
        "stdout": stdout,
        "stderr": stderr,
        "devnull": devnull,
        "data_dir": data_dir,
        "max_log": max_log,
        "saved": [],
    }
    _install_mpl_backend(data_dir, state["saved"])
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    rin = open(rfd, "rb", buffering=1 << 16)  # noqa: SIM115 - lives as long as the process
    wout = open(wfd, "wb", buffering=0)  # noqa: SIM115

    def send(obj):
        data = (json.dumps(obj) + "\n").encode()
        view = memoryview(data)
        while view:
            view = view[wout.write(view) :]

    send({"ready": True, "uid": os.getuid(), "pid": os.getpid()})
    while True:
        line = rin.readline()
        if not line:
            return
        req = json.loads(line)
        op = req.get("op")
        if op == "exec":
            resp = _cell(req, namespace, state)
        elif op == "prelude":
            resp = _cell(req, {"__name__": "__prelude__", "__builtins__": __builtins__}, state)
        else:
            resp = {"logs": "", "error": f"unknown op {op!r}", "images": []}
        send(resp)


if __name__ == "__main__":
    main()
