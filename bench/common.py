"""Shared parts of the benchmarks: child processes, the machine description, a small HTTP/1.1 client, statistics.

The benchmarks are scripts (``.venv/bin/python bench/<name>.py``); this module puts the repository root on
``sys.path`` so that they can start the fake LLM from ``tests.fakes`` and an embedded PostgreSQL from
``tests.support.postgres``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PYTHON = REPO / ".venv" / "bin" / "python"
THREADLINE = REPO / ".venv" / "bin" / "threadline"
RESULTS_DIR = REPO / "bench" / "results"
HOST = "127.0.0.1"
BETA = {"OpenAI-Beta": "assistants=v2", "Content-Type": "application/json"}
BACKENDS = ("sqlite", "postgres")
# Reference material (spec, datasets) is cloned next to the repository, as ../shared.
SHARED_DIR = REPO.parent / "shared"


def scifact_dir() -> Path:
    """The BEIR SciFact directory: $SCIFACT_DIR, else ../shared/datasets/scifact next to the repository.

    Exits the benchmark with a message saying where it looked when corpus.jsonl is not there.
    """
    env = os.environ.get("SCIFACT_DIR")
    path = Path(env) if env else SHARED_DIR / "datasets" / "scifact"
    if not (path / "corpus.jsonl").is_file():
        raise SystemExit(
            f"SciFact not found in {path} (expected corpus.jsonl, queries.jsonl, qrels/). Put the reference "
            f"material in {SHARED_DIR} (the `shared` directory next to the repository, holding datasets/scifact), "
            "or point SCIFACT_DIR at a BEIR SciFact directory."
        )
    return path


def full_windows(embedder: Any, texts: Iterable[str], n: int) -> list[str]:
    """Up to `n` chunks of exactly 256 word pieces (the model window, [CLS] and [SEP] included), cut in order from
    `texts` run together; `embedder` is an OnnxEmbedder (its tokenizer counts the pieces)."""
    out, buf = [], ""
    for text in texts:
        buf += " " + text
        ids = embedder._tok.encode(buf).ids
        if len(ids) >= 256:
            out.append(embedder._tok.decode(ids[1:255]))
            buf = ""
            if len(out) == n:
                break
    return out


# -- machine and statistics -------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram_gb = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = int(line.split()[1]) / 1024 / 1024
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "ram_gb": round(ram_gb, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "commit": commit or "unknown",
    }


def machine_line(m: dict[str, Any]) -> str:
    return (
        f"{m['date']}; {m['nproc']} CPUs ({m['cpu']}), {m['ram_gb']:.0f} GB RAM, Linux {m['kernel']}, "
        f"Python {m['python']}, commit {m['commit']}"
    )


def percentile(values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "met" if ok else "**MISSED**"


def save_json(name: str, data: Any) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / name
    path.write_text(json.dumps(data, indent=2))
    return path


def publish(name: str, res: dict[str, Any], text: str, also: Path | None = None) -> None:
    """Save the results `res` as RESULTS_DIR/`name` (and at `also` when given), print the report `text`."""
    path = save_json(name, res)
    if also:
        also.write_text(json.dumps(res, indent=2))
    print(text)
    log(f"results saved to {path}")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- child processes --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process (all its threads) and of its live descendants (`serve` runs one
    process per core under a supervisor)."""
    procs = _proc_times()
    tree, changed = {pid}, True
    while changed:
        changed = False
        for child, (ppid, _) in procs.items():
            if ppid in tree and child not in tree:
                tree.add(child)
                changed = True
    return sum(procs[p][1] for p in tree if p in procs)


def _proc_times() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds) for every process visible now."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return out


def process_tree(procs: dict[int, tuple[int, float]], roots: list[int]) -> set[int]:
    """The pids of `roots` (those still in `procs`, as _proc_times() gives: pid -> (ppid, cpu s)) and of all
    their descendants."""
    ours = {r for r in roots if r in procs}
    changed = True
    while changed:
        changed = False
        for pid, (ppid, _) in procs.items():
            if ppid in ours and pid not in ours:
                ours.add(pid)
                changed = True
    return ours


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    tick = os.sysconf("SC_CLK_TCK")
    return (total - idle) / tick, total / tick


class CpuMeter:
    """CPU used by the whole machine, and by processes that this benchmark did not start (other work on a shared
    box), over a window. Processes that start and exit inside the window are not seen, so `others` is a lower
    bound; an embedded PostgreSQL's server processes count as `others`."""

    def __init__(self) -> None:
        self.root = os.getpid()
        self._start = time.perf_counter()
        self._procs = _proc_times()
        self._busy = _machine_busy()[0]

    def _ours(self, procs: dict[int, tuple[int, float]]) -> set[int]:
        return process_tree(procs, [self.root])

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self._start
        procs = _proc_times()
        busy = _machine_busy()[0] - self._busy
        ours = self._ours(procs) | self._ours(self._procs)
        others = sum(cpu - self._procs.get(pid, (0, 0.0))[1] for pid, (_, cpu) in procs.items() if pid not in ours)
        return {"machine_busy_cores": round(busy / wall, 2), "other_processes_cores": round(max(others, 0) / wall, 2)}


def background_load(seconds: float = 1.0) -> dict[str, float]:
    """How busy the machine is before a benchmark starts (other users of a shared box)."""
    meter = CpuMeter()
    time.sleep(seconds)
    return {**meter.stop(), "loadavg_1m": os.getloadavg()[0]}


class Service:
    """A server in a child process, ready once ``ready_path`` answers over HTTP."""

    def __init__(self, name: str, cmd: list[str], port: int, ready_path: str, env: dict[str, str] | None = None):
        self.name = name
        self.cmd = cmd
        self.port = port
        self.ready_path = ready_path
        self.env = {**os.environ, **(env or {})}
        self.log_path = RESULTS_DIR / "logs" / f"{name}-{port}.log"
        self.proc: subprocess.Popen | None = None
        self.profiler: subprocess.Popen | None = None
        self.start_timeout_s = 60.0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout_s: float | None = None) -> Service:
        timeout_s = self.start_timeout_s if timeout_s is None else timeout_s
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.cmd, cwd=REPO, env=self.env, stdout=log_file, stderr=subprocess.STDOUT)
        log_file.close()
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}")
            if _http_ok(self.port, self.ready_path):
                self._start_profiler()
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not become ready in {timeout_s:.0f} s; see {self.log_path}")
            time.sleep(0.05)

    def _start_profiler(self) -> None:
        """With BENCH_PROFILE_DIR set, py-spy (BENCH_PY_SPY or on PATH) samples threadline servers until they stop;
        BENCH_PY_SPY_ARGS adds options (e.g. --idle). Output: collapsed stacks, one file per server."""
        out_dir = os.environ.get("BENCH_PROFILE_DIR")
        py_spy = os.environ.get("BENCH_PY_SPY") or shutil.which("py-spy")
        if not out_dir or self.name != "threadline":
            return
        if not py_spy:
            raise RuntimeError("BENCH_PROFILE_DIR is set but py-spy was not found (set BENCH_PY_SPY)")
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        out = Path(out_dir) / f"{self.name}-{self.port}.txt"
        cmd = [py_spy, "record", "--pid", str(self.pid), "--rate", "200", "--nonblocking", "--format", "raw"]
        cmd += ["-o", str(out)]
        cmd += os.environ.get("BENCH_PY_SPY_ARGS", "").split()
        self.profiler = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.profiler is not None:
            self.profiler.send_signal(signal.SIGINT)
            try:
                self.profiler.wait(30)
            except subprocess.TimeoutExpired:
                self.profiler.kill()
            self.profiler = None
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _http_ok(port: int, path: str) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
            return sock.recv(16).startswith(b"HTTP/1.1 2")
    except OSError:
        return False


def threadline_service(
    data_dir: Path, database_url: str | None, llm_base_url: str | None, env: dict[str, str] | None = None
) -> Service:
    port = free_port()
    server_env = {
        "THREADLINE_API_KEYS": "",
        "THREADLINE_DATABASE_URL": database_url or "",
        "OPENAI_BASE_URL": llm_base_url or "http://127.0.0.1:9/v1",
        "OPENAI_API_KEY": "bench",
        **(env or {}),
    }
    cmd = [str(THREADLINE), "serve", "--host", HOST, "--port", str(port), "--data-dir", str(data_dir)]
    return Service("threadline", [*cmd, "--log-level", "warning"], port, "/health", server_env)


def fake_llm_service(ttft_ms: float = 0.0, tokens_per_s: float = 0.0, reply_tokens: int = 0) -> Service:
    """The scripted fake OpenAI server (tests/fakes) in its own process, so it never shares the server's loop."""
    port = free_port()
    cmd = [str(PYTHON), "-m", "tests.fakes.fake_openai", "--port", str(port), "--ttft-ms", str(ttft_ms)]
    cmd += ["--tokens-per-s", str(tokens_per_s), "--reply-tokens", str(reply_tokens)]
    return Service("fake-llm", cmd, port, "/v1/models")


@contextlib.contextmanager
def database(backend: str) -> Iterator[Callable[[], str | None]]:
    """Yields a factory of fresh database URLs: None for SQLite (the server's data dir holds the file), or a new
    database in a throwaway embedded PostgreSQL cluster."""
    if backend == "sqlite":
        yield lambda: None
        return
    if backend != "postgres":
        raise ValueError(f"unknown backend {backend!r}; use one of {BACKENDS}")
    from tests.support.postgres import PostgresCluster

    cluster = PostgresCluster.start()
    try:
        yield cluster.create_database
    finally:
        cluster.stop()


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


def parse_backends(text: str) -> list[str]:
    chosen = [b.strip() for b in text.split(",") if b.strip()]
    unknown = set(chosen) - set(BACKENDS)
    if unknown or not chosen:
        raise SystemExit(f"--backends: choose from {', '.join(BACKENDS)} (comma-separated)")
    return chosen


def postgres_available() -> bool:
    try:
        from tests.support.postgres import bin_dir

        bin_dir()
        return True
    except Exception:
        return False


# -- a small HTTP/1.1 client -------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    body: bytes
    started: float  # perf_counter() before the request was written (or the connection opened)
    first: float | None  # when `marker` was first seen in the body
    ended: float  # when the whole body had arrived
    chunks: int = 0

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Connection:
    """One keep-alive HTTP/1.1 connection, with just enough of the protocol for these benchmarks (Content-Length
    and chunked bodies). Far cheaper per request than a general-purpose client, which matters when the load
    generator shares two cores with the servers it measures. Reconnects when the server closed it."""

    port: int
    host: str = HOST
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    headers: dict[str, str] = field(default_factory=lambda: dict(BETA))

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def request(
        self, method: str, path: str, body: Any = None, marker: bytes | None = None, fresh: bool = False
    ) -> Reply:
        """Send one request and read the whole response. ``fresh`` opens a new connection first, counted in the
        timing. The time ``marker`` first appears in the body is recorded (for time-to-first-token)."""
        payload = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(payload)}"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
        if fresh:
            await self.close()
        for attempt in (1, 2):
            started = time.perf_counter()
            reused = self.writer is not None
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            try:
                self.writer.write(raw)
                return await self._response(started, marker)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                await self.close()
                stale = reused and (not isinstance(exc, asyncio.IncompleteReadError) or exc.partial == b"")
                if attempt == 2 or not stale:  # only a kept-alive connection the server closed is retried
                    raise
        raise AssertionError("unreachable")

    async def _response(self, started: float, marker: bytes | None) -> Reply:
        reader = self.reader
        assert reader is not None
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        header_lines = head.decode("latin-1").lower().split("\r\n")
        length = None
        chunked = close = False
        for line in header_lines[1:]:
            name, _, value = line.partition(":")
            value = value.strip()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value:
                chunked = True
            elif name == "connection" and value == "close":
                close = True
        first = None
        chunks = 0
        body = bytearray()
        if chunked:
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                data = await reader.readexactly(size + 2)
                chunks += 1
                if first is None and marker is not None:
                    tail = body[-len(marker) :] if body else b""
                    if marker in tail + data[:-2]:
                        first = time.perf_counter()
                body += data[:-2]
        elif length is not None:
            body += await reader.readexactly(length)
        else:
            body += await reader.read()
            close = True
        ended = time.perf_counter()
        if first is None and marker is not None and marker in body:
            first = ended
        if close:
            await self.close()
        return Reply(status, bytes(body), started, first, ended, chunks)


async def gather_limited(n: int, concurrency: int, job: Callable[[int, Connection], Any], port: int) -> list[Any]:
    """Run job(i, connection) for i in range(n) with at most `concurrency` in flight, each worker on its own
    keep-alive connection."""
    results: list[Any] = [None] * n
    counter = iter(range(n))

    async def worker() -> None:
        conn = Connection(port)
        try:
            for i in counter:
                results[i] = await job(i, conn)
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
    return results


def check(reply: Reply, what: str) -> Any:
    if reply.status != 200:
        raise RuntimeError(f"{what}: HTTP {reply.status}: {reply.body[:300]!r}")
    return reply.json()
