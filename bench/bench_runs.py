"""Run engine: time-to-first-token overhead of a streaming run, and runs completed per second.

The fake LLM (tests/fakes/fake_openai.py) runs in its own process. Everything (client, threadline, fake LLM and
PostgreSQL when chosen) shares the machine's cores, so the numbers are for the whole stack on this box.

TTFT overhead = TTFT of a threadline streaming run (request start → first ``thread.message.delta`` event)
minus TTFT of the fake LLM called directly (request start → first content chunk), both measured in the same run,
alternating, each request on a new connection.

Throughput = runs created without streaming on distinct threads (the queue + worker path) against a zero-latency
fake LLM, divided by the time until the last one is completed; completions are counted by polling the runs table
(read-only, outside the server), which loads the server far less than polling the API would. Streaming runs
(each executed by its own request) are measured too.

    .venv/bin/python bench/bench_runs.py
    .venv/bin/python bench/bench_runs.py --backends sqlite,postgres --runs 600
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

from common import (
    RESULTS_DIR,
    Connection,
    CpuMeter,
    Reply,
    Service,
    check,
    cpu_seconds,
    database,
    fake_llm_service,
    gather_limited,
    log,
    machine,
    machine_line,
    md_table,
    parse_backends,
    percentile,
    publish,
    scratch_dir,
    threadline_service,
    verdict,
)

TARGET_OVERHEAD_P50_1_MS = 5.0
TARGET_OVERHEAD_P95_64_MS = 50.0
TARGET_RUNS_PER_S = 250.0
DELTA_MARKER = b"event: thread.message.delta\n"
CONTENT_MARKER = b'"delta":{"content":'  # the fake's role chunk is {"role":...}; content chunks start like this
USER_TEXT = "Write a short haiku about benchmarks."


async def setup_threads(port: int, count: int) -> list[str]:
    async def one(i: int, conn: Connection) -> str:
        body = {"messages": [{"role": "user", "content": USER_TEXT}]}
        return check(await conn.request("POST", "/v1/threads", body), "create thread")["id"]

    return await gather_limited(count, 8, one, port)


def create_assistant(port: int) -> str:
    async def go() -> str:
        conn = Connection(port)
        try:
            body = {"model": "fake-model", "instructions": "You are a terse benchmark assistant."}
            return check(await conn.request("POST", "/v1/assistants", body), "create assistant")["id"]
        finally:
            await conn.close()

    return asyncio.run(go())


# -- time to first token ----------------------------------------------------------------------------------------


class Streams:
    def __init__(self, llm_port: int, server_port: int, assistant_id: str) -> None:
        self.llm_port = llm_port
        self.server_port = server_port
        self.assistant_id = assistant_id

    async def direct(self) -> Reply:
        body = {
            "model": "fake-model",
            "messages": [
                {"role": "system", "content": "You are a terse benchmark assistant."},
                {"role": "user", "content": USER_TEXT},
            ],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        conn = Connection(self.llm_port, headers={"Content-Type": "application/json", "Authorization": "Bearer x"})
        try:
            reply = await conn.request("POST", "/v1/chat/completions", body, marker=CONTENT_MARKER, fresh=True)
        finally:
            await conn.close()
        if reply.status != 200 or reply.first is None or b"[DONE]" not in reply.body:
            raise RuntimeError(f"direct stream failed: HTTP {reply.status} {reply.body[:300]!r}")
        return reply

    async def via_threadline(self, thread_id: str) -> Reply:
        conn = Connection(self.server_port)
        body = {"assistant_id": self.assistant_id, "stream": True}
        try:
            reply = await conn.request("POST", f"/v1/threads/{thread_id}/runs", body, marker=DELTA_MARKER, fresh=True)
        finally:
            await conn.close()
        if reply.status != 200 or reply.first is None or b"event: thread.run.completed" not in reply.body:
            raise RuntimeError(f"run stream failed: HTTP {reply.status} {reply.body[-500:]!r}")
        return reply


def ttft_ms(replies: list[Reply]) -> list[float]:
    return [1000 * (r.first - r.started) for r in replies if r.first is not None]


def summarize(direct: list[Reply], via: list[Reply]) -> dict[str, Any]:
    d, t = ttft_ms(direct), ttft_ms(via)
    out: dict[str, Any] = {"samples": len(t)}
    for p in (50, 95, 99):
        out[f"direct_p{p}_ms"] = round(percentile(d, p), 2)
        out[f"threadline_p{p}_ms"] = round(percentile(t, p), 2)
        out[f"overhead_p{p}_ms"] = round(percentile(t, p) - percentile(d, p), 2)
    out["stream_total_p50_ms"] = round(percentile([1000 * (r.ended - r.started) for r in via], 50), 1)
    return out


async def steady(stream: Any, clients: int, seconds: float, cycle_s: float) -> list[Reply]:
    """`clients` closed-loop clients, each starting its first stream at a random offset within one stream's
    duration so that starts are spread out; samples from the ramp-up (first cycle) are dropped."""
    begin = time.perf_counter()
    deadline = begin + cycle_s + seconds

    async def client(i: int) -> list[Reply]:
        await asyncio.sleep(random.uniform(0, cycle_s))
        out = []
        while time.perf_counter() < deadline:
            out.append(await stream(i))
        return out

    replies = [r for batch in await asyncio.gather(*(client(i) for i in range(clients))) for r in batch]
    return [r for r in replies if r.started >= begin + cycle_s]


async def ttft_phase(streams: Streams, threads: list[str], args: argparse.Namespace) -> dict[str, Any]:
    conc = args.concurrency
    cycle_s = args.ttft_ms / 1000 + (args.tokens / args.tokens_per_s if args.tokens_per_s else 0)
    # warm-up: connection pools, imports, SQLite page cache
    for i in range(3):
        await streams.direct()
        await streams.via_threadline(threads[i])
    await asyncio.gather(*(streams.direct() for _ in range(conc)))
    await asyncio.gather(*(streams.via_threadline(threads[i]) for i in range(conc)))

    log(f"TTFT at 1 stream: {args.samples} samples each, alternating")
    meter = CpuMeter()
    direct1, via1 = [], []
    for i in range(args.samples):
        direct1.append(await streams.direct())
        via1.append(await streams.via_threadline(threads[i % len(threads)]))
    one = {**summarize(direct1, via1), **meter.stop()}
    log(f"  p50 direct {one['direct_p50_ms']} ms, threadline {one['threadline_p50_ms']} ms")

    log(f"TTFT at {conc} concurrent streams, staggered starts: {args.steady_s:g} s each")
    meter = CpuMeter()
    direct_s = await steady(lambda i: streams.direct(), conc, args.steady_s, cycle_s)
    via_s = await steady(lambda i: streams.via_threadline(threads[i]), conc, args.steady_s, cycle_s)
    many = {**summarize(direct_s, via_s), **meter.stop()}
    log(f"  p95 direct {many['direct_p95_ms']} ms, threadline {many['threadline_p95_ms']} ms")

    log(f"TTFT at {conc} simultaneous starts: {args.rounds} rounds each, alternating")
    meter = CpuMeter()
    direct_n, via_n = [], []
    for _ in range(args.rounds):
        direct_n += await asyncio.gather(*(streams.direct() for _ in range(conc)))
        via_n += await asyncio.gather(*(streams.via_threadline(threads[i]) for i in range(conc)))
    burst = {**summarize(direct_n, via_n), **meter.stop()}
    log(f"  p95 direct {burst['direct_p95_ms']} ms, threadline {burst['threadline_p95_ms']} ms")
    return {"one": one, "many": many, "burst": burst}


# -- throughput -------------------------------------------------------------------------------------------------

TERMINAL = ("completed", "failed", "cancelled", "expired", "incomplete")


class RunCounter:
    """Polls the runs table from this process (a separate read-only connection) every `interval_s`."""

    def __init__(self, backend: str, sqlite_path: Path, database_url: str | None, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self.backend = backend
        if backend == "sqlite":
            import sqlite3

            conn = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True, check_same_thread=False)
            self._query = lambda sql: conn.execute(sql).fetchall()
            self._close = conn.close
        else:
            import psycopg

            assert database_url is not None
            pg = psycopg.connect(database_url, autocommit=True)
            self._query = lambda sql: pg.execute(sql).fetchall()
            self._close = pg.close

    def counts(self) -> dict[str, int]:
        return dict(self._query("SELECT status, count(*) FROM runs GROUP BY status"))

    def done(self) -> int:
        states = ",".join(f"'{s}'" for s in TERMINAL)
        return self._query(f"SELECT count(*) FROM runs WHERE status IN ({states})")[0][0]

    def wait_for(self, total: int, timeout_s: float) -> list[tuple[float, int]]:
        """Poll until `total` runs are terminal; returns (perf_counter, terminal count) samples."""
        samples = []
        deadline = time.perf_counter() + timeout_s
        while True:
            n = self.done()
            now = time.perf_counter()
            samples.append((now, n))
            if n >= total:
                return samples
            if now > deadline:
                raise RuntimeError(f"only {n}/{total} runs finished within {timeout_s:.0f} s: {self.counts()}")
            time.sleep(self.interval_s)

    def watch(self, total: int, timeout_s: float) -> RunWatch:
        """A RunWatch of wait_for(total, timeout_s), to start() before creating the runs."""
        return RunWatch(self, total, timeout_s)

    def close(self) -> None:
        self._close()


class RunWatch:
    """RunCounter.wait_for in a background thread: start(), then join() for its samples (raising what it raised)."""

    def __init__(self, counter: RunCounter, total: int, timeout_s: float) -> None:
        self.samples: list[tuple[float, int]] = []
        self._errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._poll, args=(counter, total, timeout_s), daemon=True)

    def _poll(self, counter: RunCounter, total: int, timeout_s: float) -> None:
        try:
            self.samples.extend(counter.wait_for(total, timeout_s=timeout_s))
        except BaseException as exc:  # raised by join()
            self._errors.append(exc)

    def start(self) -> None:
        self._thread.start()

    def join(self) -> list[tuple[float, int]]:
        self._thread.join()
        if self._errors:
            raise self._errors[0]
        return self.samples


def rate_between(samples: list[tuple[float, int]], lo: int, hi: int) -> float:
    """Completions per second between the moments `lo` and `hi` runs had finished (the steady part)."""
    t_lo = next(t for t, n in samples if n >= lo)
    t_hi = next(t for t, n in samples if n >= hi)
    return (hi - lo) / (t_hi - t_lo) if t_hi > t_lo else float("nan")


async def create_runs(port: int, assistant_id: str, threads: list[str], concurrency: int) -> list[Reply]:
    async def one(i: int, conn: Connection) -> Reply:
        reply = await conn.request("POST", f"/v1/threads/{threads[i]}/runs", {"assistant_id": assistant_id})
        check(reply, "create run")
        return reply

    return await gather_limited(len(threads), concurrency, one, port)


def queued_throughput(
    server: Service,
    llm: Service,
    assistant_id: str,
    threads: list[str],
    counter: RunCounter,
    already: int,
    concurrency: int,
) -> dict[str, Any]:
    n = len(threads)
    total = already + n
    poller = counter.watch(total, timeout_s=max(120.0, n / 10))
    cpu = (cpu_seconds(server.pid), cpu_seconds(llm.pid))
    meter = CpuMeter()
    started = time.perf_counter()
    poller.start()
    replies = asyncio.run(create_runs(server.port, assistant_id, threads, concurrency))
    created = time.perf_counter()
    samples = poller.join()
    server_cpu, llm_cpu = cpu_seconds(server.pid) - cpu[0], cpu_seconds(llm.pid) - cpu[1]
    finished = next(t for t, c in samples if c >= total)
    counts = counter.counts()
    if counts.get("completed", 0) != total:
        raise RuntimeError(f"not every run completed: {counts}")
    create_ms = [1000 * (r.ended - r.started) for r in replies]
    wall = finished - started
    return {
        "runs": n,
        "concurrency": concurrency,
        "wall_s": round(wall, 2),
        "runs_per_s": round(n / wall, 1),
        "steady_runs_per_s": round(rate_between(samples, already + n // 5, already + 4 * n // 5), 1),
        "create_phase_s": round(created - started, 2),
        "create_p50_ms": round(percentile(create_ms, 50), 2),
        "create_p99_ms": round(percentile(create_ms, 99), 2),
        "server_cpu_ms_per_run": round(1000 * server_cpu / n, 2),
        "server_cpu_util": round(server_cpu / wall, 2),
        "llm_cpu_ms_per_run": round(1000 * llm_cpu / n, 2),
        **meter.stop(),
    }


def streaming_throughput(streams: Streams, threads: list[str], concurrency: int) -> dict[str, Any]:
    async def go() -> list[Reply]:
        sem = asyncio.Semaphore(concurrency)

        async def one(thread_id: str) -> Reply:
            async with sem:
                return await streams.via_threadline(thread_id)

        return await asyncio.gather(*(one(t) for t in threads))

    meter = CpuMeter()
    started = time.perf_counter()
    replies = asyncio.run(go())
    wall = time.perf_counter() - started
    load = meter.stop()
    return {
        "runs": len(replies),
        "concurrency": concurrency,
        "wall_s": round(wall, 2),
        "runs_per_s": round(len(replies) / wall, 1),
        "stream_p50_ms": round(percentile([1000 * (r.ended - r.started) for r in replies], 50), 1),
        **load,
    }


# -- per backend ------------------------------------------------------------------------------------------------


def bench_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    env = {"THREADLINE_RUN_WORKERS": str(args.workers)} if args.workers else None
    out: dict[str, Any] = {"backend": backend}
    with database(backend) as new_database, scratch_dir("tl-bench-runs-") as tmp:
        log(
            f"[{backend}] TTFT: fake LLM TTFT {args.ttft_ms:g} ms, {args.tokens_per_s:g} tokens/s, {args.tokens} tokens"
        )
        with fake_llm_service(args.ttft_ms, args.tokens_per_s, args.tokens) as llm:
            with threadline_service(tmp / "ttft", new_database(), llm.url + "/v1", env) as server:
                assistant_id = create_assistant(server.port)
                threads = asyncio.run(setup_threads(server.port, args.concurrency))
                streams = Streams(llm.port, server.port, assistant_id)
                out["ttft"] = asyncio.run(ttft_phase(streams, threads, args))

        log(f"[{backend}] throughput: zero-latency fake LLM, {args.runs} queued runs at concurrency {args.run_clients}")
        with fake_llm_service(0, 0, args.tokens) as llm:
            database_url = new_database()
            with threadline_service(tmp / "tput", database_url, llm.url + "/v1", env) as server:
                assistant_id = create_assistant(server.port)
                warm = args.run_clients
                threads = asyncio.run(setup_threads(server.port, warm + args.runs))
                counter = RunCounter(backend, tmp / "tput" / "threadline.db", database_url)
                try:
                    queued_throughput(server, llm, assistant_id, threads[:warm], counter, 0, args.run_clients)
                    queued = queued_throughput(
                        server, llm, assistant_id, threads[warm:], counter, warm, args.run_clients
                    )
                finally:
                    counter.close()
                log(f"  queued: {queued['runs_per_s']} runs/s ({queued['steady_runs_per_s']} steady)")
                streams = Streams(llm.port, server.port, assistant_id)
                m = min(args.stream_runs, len(threads))
                streamed = streaming_throughput(streams, threads[:m], args.run_clients)
                log(f"  streaming: {streamed['runs_per_s']} runs/s")
        out["throughput"] = {"queued": queued, "streaming": streamed}
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    info = machine()
    started = time.monotonic()
    backends = [bench_backend(b, args) for b in args.backends]
    return {
        "benchmark": "runs",
        "machine": info,
        "settings": {
            "ttft_ms": args.ttft_ms,
            "tokens_per_s": args.tokens_per_s,
            "tokens": args.tokens,
            "samples": args.samples,
            "concurrency": args.concurrency,
            "rounds": args.rounds,
            "steady_s": args.steady_s,
            "runs": args.runs,
            "run_clients": args.run_clients,
            "stream_runs": args.stream_runs,
            "workers": args.workers or "default",
        },
        "backends": backends,
        "elapsed_s": round(time.monotonic() - started, 1),
    }


def report(res: dict[str, Any]) -> str:
    s = res["settings"]
    ttft_rows, tput_rows, checks = [], [], []
    for b in res["backends"]:
        one, many, burst = b["ttft"]["one"], b["ttft"]["many"], b["ttft"]["burst"]
        rows = (
            ("1 stream", one),
            (f"{s['concurrency']} concurrent (staggered)", many),
            (f"{s['concurrency']} simultaneous starts", burst),
        )
        for label, r in rows:
            ttft_rows.append(
                [
                    b["backend"],
                    label,
                    r["samples"],
                    f"{r['direct_p50_ms']:.1f} / {r['direct_p95_ms']:.1f}",
                    f"{r['threadline_p50_ms']:.1f} / {r['threadline_p95_ms']:.1f}",
                    f"**{r['overhead_p50_ms']:.1f}** / **{r['overhead_p95_ms']:.1f}**",
                    f"{r['other_processes_cores']:.2f}",
                ]
            )
        q, st = b["throughput"]["queued"], b["throughput"]["streaming"]
        tput_rows.append(
            [
                b["backend"],
                f"queued (create, no stream), {q['runs']} runs, {q['concurrency']} clients",
                f"**{q['runs_per_s']:.0f}**",
                f"{q['steady_runs_per_s']:.0f}",
                f"create p50 {q['create_p50_ms']:.1f} ms, p99 {q['create_p99_ms']:.1f} ms; server CPU "
                f"{q['server_cpu_ms_per_run']:.1f} ms/run ({q['server_cpu_util']:.0%} of a core), fake LLM "
                f"{q['llm_cpu_ms_per_run']:.1f} ms/run",
                f"{q['other_processes_cores']:.2f}",
            ]
        )
        tput_rows.append(
            [
                b["backend"],
                f"streaming, {st['runs']} runs, {st['concurrency']} clients",
                f"**{st['runs_per_s']:.0f}**",
                "",
                f"stream p50 {st['stream_p50_ms']:.1f} ms",
                f"{st['other_processes_cores']:.2f}",
            ]
        )
        checks += [
            f"- {b['backend']}: overhead p50 at 1 stream {one['overhead_p50_ms']:.1f} ms "
            f"(target ≤ {TARGET_OVERHEAD_P50_1_MS:g}): {verdict(one['overhead_p50_ms'] <= TARGET_OVERHEAD_P50_1_MS)}",
            f"- {b['backend']}: overhead p95 at {s['concurrency']} concurrent streams {many['overhead_p95_ms']:.1f} ms "
            f"(target ≤ {TARGET_OVERHEAD_P95_64_MS:g}): "
            f"{verdict(many['overhead_p95_ms'] <= TARGET_OVERHEAD_P95_64_MS)}",
            f"- {b['backend']}: {q['runs_per_s']:.0f} runs/s (target ≥ {TARGET_RUNS_PER_S:g}): "
            f"{verdict(q['runs_per_s'] >= TARGET_RUNS_PER_S)}",
        ]
    return "\n".join(
        [
            "### Run engine: streaming TTFT overhead",
            "",
            f"Machine: {machine_line(res['machine'])}",
            "",
            f"Fake LLM (own process): TTFT {s['ttft_ms']:g} ms, {s['tokens_per_s']:g} tokens/s, {s['tokens']} tokens. "
            f"1 stream: {s['samples']} sequential samples each, direct and threadline alternating. "
            f"{s['concurrency']} concurrent (staggered): {s['concurrency']} closed-loop clients for "
            f"{s['steady_s']:g} s each (direct, then threadline), first starts spread over one stream's duration. "
            f"{s['concurrency']} simultaneous starts: {s['rounds']} rounds of {s['concurrency']} requests fired "
            "together (worst case). Values are p50 / p95 in ms. Other load = CPU used meanwhile by processes "
            "this benchmark did not start.",
            "",
            md_table(
                [
                    "store",
                    "streams",
                    "samples",
                    "direct TTFT",
                    "threadline TTFT",
                    "overhead (p50 / p95)",
                    "other load (cores)",
                ],
                ttft_rows,
            ),
            "",
            "### Run engine: runs completed per second",
            "",
            f"Zero-latency fake LLM ({s['tokens']} tokens, unpaced); THREADLINE_RUN_WORKERS={s['workers']}. "
            "runs/s = runs / (first create → last completion); steady = rate between 20% and 80% completed.",
            "",
            md_table(["store", "mode", "runs/s", "steady runs/s", "notes", "other load (cores)"], tput_rows),
            "",
            *checks,
        ]
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", type=parse_backends, default=["sqlite"], help="sqlite,postgres (default sqlite)")
    parser.add_argument("--ttft-ms", type=float, default=50.0, help="fake LLM time to first token (default 50)")
    parser.add_argument("--tokens-per-s", type=float, default=100.0, help="fake LLM token rate (default 100)")
    parser.add_argument("--tokens", type=int, default=20, help="tokens per reply (default 20)")
    parser.add_argument("--samples", type=int, default=40, help="TTFT samples at 1 stream (default 40)")
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent streams for TTFT (default 64)")
    parser.add_argument(
        "--steady-s", type=float, default=5.0, help="seconds of staggered concurrent streams (default 5)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of simultaneous starts (default 3)")
    parser.add_argument("--runs", type=int, default=1000, help="queued runs for throughput (default 1000)")
    parser.add_argument("--run-clients", type=int, default=64, help="concurrent clients creating runs (default 64)")
    parser.add_argument("--stream-runs", type=int, default=500, help="streaming runs for throughput (default 500)")
    parser.add_argument("--workers", type=int, default=0, help="THREADLINE_RUN_WORKERS (default: server default)")
    parser.add_argument("--json", type=Path, help=f"also write results here (default {RESULTS_DIR}/runs.json)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    res = run(args)
    publish("runs.json", res, report(res), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
