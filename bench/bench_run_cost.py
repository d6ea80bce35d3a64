"""Cost of one plain text run (create → completed): server CPU and database transactions per run, by thread length,
and queued runs per second; optionally for two source trees in the same invocation (before / after a change).

Each variant gets its own threadline server (started through bench/counted_server.py, which counts the
transactions it begins) and a zero-latency fake LLM. For every thread length L a thread is filled with L messages
(alternating user / assistant, about 40 tokens each, through the API), then runs are created one at a time
(`POST /v1/threads/{id}/runs`, not streamed) and each is awaited by polling the runs table read-only from this
process. Server CPU and transactions per run are the deltas over those runs, less what the idle server spends in
the same time (its sweep), measured just before.

    .venv/bin/python bench/bench_run_cost.py
    git archive <commit> src | tar -x -C /tmp/before
    .venv/bin/python bench/bench_run_cost.py --before-src /tmp/before/src --lengths 10,100,1000,10000
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

from bench_runs import RunCounter, create_assistant, queued_throughput, setup_threads
from common import (
    HOST,
    PYTHON,
    Connection,
    Service,
    check,
    cpu_seconds,
    fake_llm_service,
    free_port,
    gather_limited,
    log,
    machine,
    machine_line,
    md_table,
    save_json,
    scratch_dir,
)

HERE = Path(__file__).resolve().parent
SENTENCE = "The quarterly report lists revenue by region, with notes on churn, hiring and the new pricing plan"


def counted_service(data_dir: Path, llm_url: str, src: Path | None, tx_file: Path) -> Service:
    port = free_port()
    env = {
        "THREADLINE_API_KEYS": "",
        "THREADLINE_DATABASE_URL": "",
        "OPENAI_BASE_URL": llm_url,
        "OPENAI_API_KEY": "bench",
        "BENCH_TX_FILE": str(tx_file),
    }
    if src is not None:
        env["PYTHONPATH"] = str(src)
    cmd = [str(PYTHON), str(HERE / "counted_server.py"), "serve", "--host", HOST, "--port", str(port)]
    cmd += ["--data-dir", str(data_dir), "--log-level", "warning"]
    return Service("threadline", cmd, port, "/health", env)


def tx_counts(path: Path) -> tuple[int, int]:
    time.sleep(0.06)  # the server rewrites the file every 20 ms
    begins, writes = path.read_text().split()
    return int(begins), int(writes)


async def fill_thread(port: int, thread_id: str, n: int) -> None:
    async def one(i: int, conn: Connection) -> None:
        body = {"role": "user" if i % 2 == 0 else "assistant", "content": f"{i}: {SENTENCE} ({i})."}
        check(await conn.request("POST", f"/v1/threads/{thread_id}/messages", body), "add message")

    await gather_limited(n, 8, one, port)


async def sequential_runs(port: int, assistant_id: str, thread_id: str, n: int, db: sqlite3.Connection) -> None:
    conn = Connection(port)
    try:
        for _ in range(n):
            run = check(
                await conn.request("POST", f"/v1/threads/{thread_id}/runs", {"assistant_id": assistant_id}),
                "create run",
            )
            while True:
                status = db.execute("SELECT status FROM runs WHERE id = ?", (run["id"],)).fetchone()[0]
                if status not in ("queued", "in_progress"):
                    break
                await asyncio.sleep(0.002)
            if status != "completed":
                raise RuntimeError(f"run {run['id']} ended {status}")
    finally:
        await conn.close()


def idle_rates(server: Service, tx_file: Path, seconds: float) -> tuple[float, float]:
    """Server CPU seconds and transactions per second while nothing is asked of it."""
    cpu0, (tx0, _) = cpu_seconds(server.pid), tx_counts(tx_file)
    t0 = time.perf_counter()
    time.sleep(seconds)
    cpu1, (tx1, _) = cpu_seconds(server.pid), tx_counts(tx_file)
    wall = time.perf_counter() - t0
    return (cpu1 - cpu0) / wall, (tx1 - tx0) / wall


def bench_variant(name: str, src: Path | None, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"variant": name, "src": str(src) if src else "PYTHONPATH", "lengths": []}
    with scratch_dir("tl-bench-cost-") as tmp, fake_llm_service(0, 0, args.tokens) as llm:
        tx_file = tmp / "tx"
        with counted_service(tmp / "data", llm.url + "/v1", src, tx_file) as server:
            db = sqlite3.connect(f"file:{tmp / 'data' / 'threadline.db'}?mode=ro", uri=True)
            assistant_id = create_assistant(server.port)
            idle_cpu, idle_tx = idle_rates(server, tx_file, 3.0)
            out["idle"] = {"cpu_ms_per_s": round(1000 * idle_cpu, 2), "tx_per_s": round(idle_tx, 2)}
            for length in args.lengths:
                thread_id = asyncio.run(setup_threads(server.port, 1))[0]  # holds one message already
                asyncio.run(fill_thread(server.port, thread_id, length - 1))
                asyncio.run(sequential_runs(server.port, assistant_id, thread_id, 2, db))  # warm-up
                cpu0, (tx0, w0), t0 = cpu_seconds(server.pid), tx_counts(tx_file), time.perf_counter()
                asyncio.run(sequential_runs(server.port, assistant_id, thread_id, args.runs, db))
                wall = time.perf_counter() - t0
                cpu1, (tx1, w1) = cpu_seconds(server.pid), tx_counts(tx_file)
                row = {
                    "messages": length,
                    "runs": args.runs,
                    "cpu_ms_per_run": round(1000 * (cpu1 - cpu0 - idle_cpu * wall) / args.runs, 2),
                    "tx_per_run": round((tx1 - tx0 - idle_tx * wall) / args.runs, 2),
                    "write_tx_per_run": round((w1 - w0) / args.runs, 2),
                    "wall_ms_per_run": round(1000 * wall / args.runs, 1),
                }
                log(f"  [{name}] {row}")
                out["lengths"].append(row)
            db.close()
            if args.throughput_runs:
                warm, n = 32, args.throughput_runs
                threads = asyncio.run(setup_threads(server.port, warm + n))
                counter = RunCounter("sqlite", tmp / "data" / "threadline.db", None)
                try:
                    done = counter.done()  # the runs above
                    queued_throughput(server, llm, assistant_id, threads[:warm], counter, done, 32)
                    tput = queued_throughput(server, llm, assistant_id, threads[warm:], counter, done + warm, 32)
                finally:
                    counter.close()
                log(f"  [{name}] queued: {tput['runs_per_s']} runs/s, {tput['server_cpu_ms_per_run']} ms CPU/run")
                out["throughput"] = tput
    return out


def report(res: dict[str, Any]) -> str:
    lines = [f"Machine: {machine_line(res['machine'])}", ""]
    variants = res["variants"]
    header = ["messages in thread"]
    for v in variants:
        header += [f"{v['variant']} CPU ms/run", f"{v['variant']} tx/run (writes)"]
    rows = []
    for i, length in enumerate(res["settings"]["lengths"]):
        row: list[Any] = [f"{length:,}"]
        for v in variants:
            r = v["lengths"][i]
            row += [r["cpu_ms_per_run"], f"{r['tx_per_run']} ({r['write_tx_per_run']})"]
        rows.append(row)
    lines.append(md_table(header, rows))
    if all("throughput" in v for v in variants):
        lines.append("")
        lines.append(
            md_table(
                ["variant", "queued runs/s", "steady runs/s", "server CPU ms/run", "other load (cores)"],
                [
                    [
                        v["variant"],
                        v["throughput"]["runs_per_s"],
                        v["throughput"]["steady_runs_per_s"],
                        v["throughput"]["server_cpu_ms_per_run"],
                        v["throughput"].get("other_processes_cores", ""),
                    ]
                    for v in variants
                ],
            )
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", default="10,100,1000,10000", help="thread lengths (default 10,100,1000,10000)")
    parser.add_argument("--runs", type=int, default=30, help="measured sequential runs per length (default 30)")
    parser.add_argument("--tokens", type=int, default=20, help="tokens per reply (default 20)")
    parser.add_argument("--throughput-runs", type=int, default=300, help="queued runs for runs/s (0: skip)")
    parser.add_argument("--before-src", type=Path, help="a src/ directory to measure first, as 'before'")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.lengths = [int(x) for x in args.lengths.split(",")]
    res: dict[str, Any] = {
        "benchmark": "run_cost",
        "machine": machine(),
        "settings": {"lengths": args.lengths, "runs": args.runs, "throughput_runs": args.throughput_runs},
        "variants": [],
    }
    if args.before_src:
        res["variants"].append(bench_variant("before", args.before_src.resolve(), args))
    res["variants"].append(bench_variant("after" if args.before_src else "now", None, args))
    log(f"results: {save_json('run_cost.json', res)}")
    print(report(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
