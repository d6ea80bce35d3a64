"""Runs completed per second by process count: `serve --workers 1, 2, 4` (and `serve` + `threadline worker`
processes) on PostgreSQL, with SQLite for comparison.

One command starts everything: an embedded PostgreSQL (tests/support/postgres.py, as the tests do), the scripted
fake LLM (tests/fakes/fake_openai.py) with zero latency in its own process, and threadline in each layout. The load
generator is the official openai SDK (AsyncOpenAI, `--clients` concurrent tasks) creating background runs
(`beta.threads.runs.create`, no stream) on distinct pre-made threads; completions are counted by polling the runs
table over a separate read-only connection (far cheaper for the server than polling the API).

Per measurement: runs/s between 20% and 80% completed (steady state) and over the whole batch, and the CPU time
spent meanwhile by each party, per run: threadline (every process of the layout, children included), PostgreSQL
(the postmaster and its backends), the fake LLM, and this process (the SDK clients and the counter). "Other load" is
the machine's busy time not spent by any of these (other users of a shared box), in cores. Each layout is measured
`--repeats` times on the same servers, after a warm-up batch.

    .venv/bin/python bench/bench_scale.py
    .venv/bin/python bench/bench_scale.py --backends postgres --layouts 1,2,4,1+1,1+2 --repeats 5 --runs 1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench_runs import RunCounter, create_assistant, rate_between, setup_threads
from common import (
    HOST,
    PYTHON,
    RESULTS_DIR,
    THREADLINE,
    Service,
    _machine_busy,
    _proc_times,
    fake_llm_service,
    free_port,
    log,
    machine,
    machine_line,
    md_table,
    parse_backends,
    process_tree,
    publish,
    scratch_dir,
)

WORKER_READY = "threadline worker ready"


# -- layouts ----------------------------------------------------------------------------------------------------


def parse_layouts(text: str) -> list[tuple[int, int]]:
    """ "1,2,4,1+2" -> [(1, 0), (2, 0), (4, 0), (1, 2)]: (serve processes, `threadline worker` processes)."""
    out = []
    for part in text.split(","):
        serve, _, workers = part.strip().partition("+")
        try:
            out.append((int(serve), int(workers or 0)))
        except ValueError:
            raise SystemExit(f"--layouts: {part!r} is not N or N+M") from None
    if not out or any(s < 1 or w < 0 for s, w in out):
        raise SystemExit("--layouts: each layout needs at least one serve process")
    return out


def layout_name(serve: int, workers: int) -> str:
    name = f"serve --workers {serve}"
    return name + f" + {workers} worker" + ("s" if workers > 1 else "") if workers else name


class WorkerProcess:
    """`threadline worker` (no HTTP): ready once its log says so."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.cmd = [str(PYTHON), "-m", "threadline.cli", "worker", "--data-dir", str(data_dir)]
        self.env = {**os.environ, **env}
        self.log_path = RESULTS_DIR / "logs" / f"worker-{free_port()}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout_s: float = 60.0) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while WORKER_READY not in self.log_path.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"threadline worker did not start; see {self.log_path}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@contextlib.contextmanager
def layout(
    serve: int, workers: int, data_dir: Path, database_url: str | None, llm_url: str, extra_env: dict[str, str]
) -> Iterator[tuple[Service, list[int]]]:
    """Start `serve --workers <serve>` (plus `workers` worker processes, with the API processes executing no
    background runs); yields the API service and the root pids of every threadline process."""
    env = {
        "THREADLINE_API_KEYS": "",
        "THREADLINE_DATABASE_URL": database_url or "",
        "THREADLINE_DATA_DIR": str(data_dir),
        "OPENAI_BASE_URL": llm_url,
        "OPENAI_API_KEY": "bench",
        "THREADLINE_SANDBOX_WARM_POOL": "0",
        **extra_env,
    }
    api_env = {**env, "THREADLINE_RUN_WORKERS": "0"} if workers else env
    port = free_port()
    cmd = [str(THREADLINE), "serve", "--host", HOST, "--port", str(port), "--data-dir", str(data_dir)]
    cmd += ["--workers", str(serve), "--log-level", "warning"]
    api = Service("threadline", cmd, port, "/health", api_env)
    started: list[WorkerProcess] = []
    try:
        api.start()
        for _ in range(workers):
            started.append(WorkerProcess(data_dir, env).start())
        yield api, [api.pid, *(w.pid for w in started)]
    finally:
        for w in started:
            w.stop()
        api.stop()


# -- CPU accounting ---------------------------------------------------------------------------------------------


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class PartyMeter:
    """CPU seconds spent over a window by named process trees (`parties`: name -> root pids), by this process
    ("client"), and by the rest of the machine ("other"). A process that starts and exits inside the window is
    counted as "other"."""

    def __init__(self, parties: dict[str, list[int]]) -> None:
        self.parties = parties
        self._t0 = time.perf_counter()
        self._self0 = _self_cpu()
        self._busy0 = _machine_busy()[0]
        self._procs0 = _proc_times()

    def _by_party(self, procs: dict[int, tuple[int, float]]) -> dict[str, set[int]]:
        return {name: process_tree(procs, roots) for name, roots in self.parties.items()}

    def stop(self) -> dict[str, float]:
        """{party: CPU seconds, "client": ..., "other": ..., "wall_s": ..., "machine_busy_cores": ...}."""
        wall = time.perf_counter() - self._t0
        client = _self_cpu() - self._self0
        busy = _machine_busy()[0] - self._busy0
        procs = _proc_times()
        members0, members1 = self._by_party(self._procs0), self._by_party(procs)
        out: dict[str, float] = {"wall_s": wall, "client": client}
        for name in self.parties:
            # a member that exited meanwhile counts as spending nothing (its last reading is gone)
            before = {p: self._procs0.get(p, (0, 0.0))[1] for p in members0[name] | members1[name]}
            out[name] = sum(procs[p][1] - cpu for p, cpu in before.items() if p in procs)
        out["other"] = max(0.0, busy - client - sum(out[name] for name in self.parties))
        out["machine_busy_cores"] = busy / wall
        return out


def postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])


def pg_transactions(counter: RunCounter) -> int | None:
    """Transactions committed or rolled back in the run counter's PostgreSQL database so far (None on SQLite)."""
    if counter.backend != "postgres":
        return None
    sql = "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
    return int(counter._query(sql)[0][0])


# -- load -------------------------------------------------------------------------------------------------------


async def create_runs(base_url: str, assistant_id: str, threads: list[str], clients: int) -> None:
    """`clients` concurrent tasks on one AsyncOpenAI client, each creating background runs until none are left."""
    from openai import AsyncOpenAI

    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the SDK's notice that Assistants is deprecated
    todo = iter(threads)
    async with AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0, timeout=120) as client:

        async def one() -> None:
            for thread_id in todo:
                await client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant_id)

        await asyncio.gather(*(one() for _ in range(clients)))


def measure(
    api: Service,
    parties: dict[str, list[int]],
    assistant_id: str,
    threads: list[str],
    counter: RunCounter,
    already: int,
    clients: int,
) -> dict[str, Any]:
    """Create a run on each of `threads` and wait for all to finish (`already` runs finished before)."""
    n = len(threads)
    total = already + n
    poller = counter.watch(total, timeout_s=max(180.0, n / 5))
    xacts = pg_transactions(counter)
    meter = PartyMeter(parties)
    loadavg = os.getloadavg()[0]
    started = time.perf_counter()
    poller.start()
    asyncio.run(create_runs(api.url + "/v1", assistant_id, threads, clients))
    created = time.perf_counter()
    samples = poller.join()
    cpu = meter.stop()
    counts = counter.counts()
    if counts.get("completed", 0) != total:
        raise RuntimeError(f"not every run completed: {counts}")
    finished = next(t for t, c in samples if c >= total)
    wall = finished - started
    out: dict[str, Any] = {
        "runs": n,
        "runs_per_s": round(n / wall, 1),
        "steady_runs_per_s": round(rate_between(samples, already + n // 5, already + 4 * n // 5), 1),
        "create_phase_s": round(created - started, 2),
        "wall_s": round(wall, 2),
        "loadavg_1m": round(loadavg, 2),
        "machine_busy_cores": round(cpu["machine_busy_cores"], 2),
        "other_cores": round(cpu["other"] / cpu["wall_s"], 2),
    }
    if xacts is not None:
        # The counter's own polls are transactions too (one each); the statistics are flushed within a second.
        time.sleep(1.2)
        after = pg_transactions(counter)
        assert after is not None
        out["postgres_transactions_per_run"] = round((after - xacts - len(samples) - 1) / n, 2)
    for name in [*parties, "client"]:
        out[f"{name}_cpu_ms_per_run"] = round(1000 * cpu[name] / n, 2)
        out[f"{name}_cores"] = round(cpu[name] / cpu["wall_s"], 2)
    return out


# -- per backend and layout -------------------------------------------------------------------------------------


def bench_layout(
    backend: str,
    serve: int,
    workers: int,
    args: argparse.Namespace,
    llm: Service,
    new_database: Any,
    postgres: list[int],
    tmp: Path,
) -> dict[str, Any]:
    name = layout_name(serve, workers)
    data_dir = tmp / f"{backend}-{serve}-{workers}"
    database_url = new_database()
    extra = {"THREADLINE_RUN_WORKERS": str(args.run_workers)} if args.run_workers else {}
    log(f"[{backend}] {name}: starting")
    with layout(serve, workers, data_dir, database_url, llm.url + "/v1", extra) as (api, roots):
        parties = {"threadline": roots, "fake_llm": [llm.pid]}
        if postgres:
            parties["postgres"] = postgres
        assistant_id = create_assistant(api.port)
        warm = args.warmup
        threads = asyncio.run(setup_threads(api.port, warm + args.repeats * args.runs))
        counter = RunCounter(backend, data_dir / "threadline.db", database_url)
        reps = []
        try:
            measure(api, parties, assistant_id, threads[:warm], counter, 0, args.clients)
            for i in range(args.repeats):
                lo = warm + i * args.runs
                rep = measure(api, parties, assistant_id, threads[lo : lo + args.runs], counter, lo, args.clients)
                log(
                    f"[{backend}] {name} #{i + 1}: {rep['steady_runs_per_s']} runs/s steady "
                    f"({rep['runs_per_s']} overall); threadline {rep['threadline_cpu_ms_per_run']} ms CPU/run; "
                    f"other load {rep['other_cores']} cores"
                )
                reps.append(rep)
        finally:
            counter.close()
    return {"backend": backend, "serve": serve, "workers": workers, "layout": name, "repeats": reps}


def run(args: argparse.Namespace) -> dict[str, Any]:
    info = machine()
    started = time.monotonic()
    results = []
    with scratch_dir("tl-bench-scale-") as tmp, fake_llm_service(0, 0, args.tokens) as llm:
        for backend in args.backends:
            layouts = [lay for lay in args.layouts if backend == "postgres" or lay[1] == 0]
            if backend == "postgres":
                from tests.support.postgres import PostgresCluster

                cluster = PostgresCluster.start()
                try:
                    pids = [postmaster_pid(cluster.pgdata)]
                    for serve, workers in layouts:
                        results.append(
                            bench_layout(backend, serve, workers, args, llm, cluster.create_database, pids, tmp)
                        )
                finally:
                    cluster.stop()
            else:
                for serve, workers in layouts:
                    results.append(bench_layout(backend, serve, workers, args, llm, lambda: None, [], tmp))
    return {
        "benchmark": "scale",
        "machine": info,
        "settings": {
            "runs": args.runs,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "clients": args.clients,
            "tokens": args.tokens,
            "run_workers": args.run_workers or "default",
        },
        "layouts": results,
        "elapsed_s": round(time.monotonic() - started, 1),
    }


def _spread(values: list[float], fmt: str = "{:.0f}") -> str:
    if not values:
        return ""
    med = statistics.median(values)
    return f"**{fmt.format(med)}** ({fmt.format(min(values))}–{fmt.format(max(values))})"


def _median(reps: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in reps)


def report(res: dict[str, Any]) -> str:
    s = res["settings"]
    rows = []
    for lay in res["layouts"]:
        reps = lay["repeats"]
        pg = "—"
        if "postgres_cpu_ms_per_run" in reps[0]:
            xacts = _median(reps, "postgres_transactions_per_run")
            pg = f"{_median(reps, 'postgres_cpu_ms_per_run'):.1f} ({xacts:.1f})"
        rows.append(
            [
                lay["backend"],
                lay["layout"],
                _spread([r["steady_runs_per_s"] for r in reps]),
                _spread([r["runs_per_s"] for r in reps]),
                f"{_median(reps, 'threadline_cpu_ms_per_run'):.1f}",
                f"{_median(reps, 'threadline_cores'):.2f}",
                pg,
                f"{_median(reps, 'fake_llm_cpu_ms_per_run'):.1f}",
                f"{_median(reps, 'client_cpu_ms_per_run'):.1f}",
                f"{_median(reps, 'other_cores'):.2f} ({min(r['other_cores'] for r in reps):.2f}–"
                f"{max(r['other_cores'] for r in reps):.2f})",
                f"{_median(reps, 'loadavg_1m'):.1f}",
            ]
        )
    return "\n".join(
        [
            "### Runs per second by process count",
            "",
            f"Machine: {machine_line(res['machine'])}",
            "",
            f"Zero-latency fake LLM ({s['tokens']} tokens, unpaced, own process). {s['runs']} background runs per "
            f"measurement, created by the openai SDK (AsyncOpenAI, {s['clients']} concurrent tasks) on distinct "
            f"threads; {s['repeats']} measurements per layout after a {s['warmup']}-run warm-up; "
            f"THREADLINE_RUN_WORKERS={s['run_workers']}. runs/s: median (min–max) over the measurements; steady = "
            "between 20% and 80% completed. CPU: ms per run (medians); cores = CPU time / wall time. Client = the "
            "SDK load generator and the completion counter (this process). Other load = machine busy time spent "
            "by none of these (other jobs on the box), in cores. PostgreSQL transactions/run counts every "
            "statement run outside a transaction (a pool's connection check) as one.",
            "",
            md_table(
                [
                    "store",
                    "layout",
                    "steady runs/s",
                    "runs/s",
                    "threadline CPU ms/run",
                    "threadline cores",
                    "PostgreSQL CPU ms/run (transactions/run)",
                    "fake LLM ms/run",
                    "client ms/run",
                    "other load (cores)",
                    "load avg",
                ],
                rows,
            ),
        ]
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--backends", type=parse_backends, default=["postgres", "sqlite"], help="default postgres,sqlite"
    )
    parser.add_argument(
        "--layouts",
        type=parse_layouts,
        default=parse_layouts("1,2,4,1+1"),
        help="serve process counts, N+M for N serve + M `threadline worker` (PostgreSQL only); default 1,2,4,1+1",
    )
    parser.add_argument("--runs", type=int, default=600, help="runs per measurement (default 600)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per layout (default 3)")
    parser.add_argument("--warmup", type=int, default=200, help="warm-up runs per layout (default 200)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent SDK tasks creating runs (default 32)")
    parser.add_argument("--tokens", type=int, default=20, help="tokens per fake reply (default 20)")
    parser.add_argument("--run-workers", type=int, default=0, help="THREADLINE_RUN_WORKERS (default: server's)")
    parser.add_argument("--json", type=Path, help=f"also write results here (default {RESULTS_DIR}/scale.json)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    res = run(args)
    publish("scale.json", res, report(res), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
