"""Instructions (callgrind) and server CPU per operation: a plain queued run, a streamed run, GET and POST messages.

CPU time on a shared, busy machine moves with everyone else's load; the number of instructions the server executes
does not. This starts one threadline server under ``valgrind --tool=callgrind --instr-atstart=no`` (or plainly,
``--mode cpu``) and a zero-latency fake LLM (20-token replies) in its own process; after a warm-up, counting is
switched on (``callgrind_control -i on``) around each phase of sequential operations: ``--n`` plain runs, each on a
fresh one-message thread (queued: create, then poll the runs table read-only from this process; streamed:
``stream: true``, read to the end), then ``5 * --n`` ``GET messages?limit=20`` (a 40-message thread) and
``POST messages``. The idle server's own work (its 1 s sweep), counted over an ``idle`` phase, is subtracted per
second of each phase.

    .venv/bin/python bench/bench_instructions.py --n 15
    git archive <commit> src | tar -x -C /tmp/before
    .venv/bin/python bench/bench_instructions.py --src /tmp/before/src
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from bench_runs import create_assistant, setup_threads
from common import (
    HOST,
    PYTHON,
    REPO,
    Connection,
    Service,
    check,
    cpu_seconds,
    fake_llm_service,
    free_port,
    log,
    machine,
    save_json,
    scratch_dir,
)


def server(data_dir: Path, llm_url: str, src: Path, mode: str, out: Path) -> Service:
    env = {
        "THREADLINE_API_KEYS": "",
        "THREADLINE_DATABASE_URL": "",
        "OPENAI_BASE_URL": llm_url,
        "OPENAI_API_KEY": "bench",
        "PYTHONPATH": str(src),
    }
    port = free_port()
    cmd = [str(PYTHON), "-m", "threadline.cli", "serve", "--host", HOST, "--port", str(port)]
    # One process: callgrind counts the process it starts (`serve` defaults to one process per core).
    cmd += ["--data-dir", str(data_dir), "--log-level", "warning", "--workers", "1"]
    if mode == "callgrind":
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}", *cmd]
    service = Service("threadline", cmd, port, "/health", env)
    service.start_timeout_s = 300.0  # start-up under callgrind takes a minute or more on a busy machine
    return service


async def queued(port: int, assistant: str, threads: list[str], db: sqlite3.Connection) -> None:
    conn = Connection(port)
    for thread in threads:
        run = check(await conn.request("POST", f"/v1/threads/{thread}/runs", {"assistant_id": assistant}), "run")
        while (status := db.execute("SELECT status FROM runs WHERE id = ?", (run["id"],)).fetchone()[0]) in (
            "queued",
            "in_progress",
        ):
            await asyncio.sleep(0.002)
        if status != "completed":
            raise RuntimeError(f"run {run['id']} ended {status}")
    await conn.close()


async def streamed(port: int, assistant: str, threads: list[str]) -> None:
    conn = Connection(port)
    for thread in threads:
        reply = await conn.request("POST", f"/v1/threads/{thread}/runs", {"assistant_id": assistant, "stream": True})
        if reply.status != 200 or b"thread.run.completed" not in reply.body:
            raise RuntimeError(f"stream failed: {reply.body[-300:]!r}")
    await conn.close()


async def gets(port: int, thread: str, n: int) -> None:
    conn = Connection(port)
    for _ in range(n):
        check(await conn.request("GET", f"/v1/threads/{thread}/messages?limit=20"), "list messages")
    await conn.close()


async def posts(port: int, thread: str, n: int) -> None:
    conn = Connection(port)
    body = {"role": "user", "content": "x" * 170}
    for _ in range(n):
        check(await conn.request("POST", f"/v1/threads/{thread}/messages", body), "add message")
    await conn.close()


def instructions(pid: int) -> int:
    """Instructions counted so far in every thread of the callgrind process `pid`."""
    out = subprocess.run(["callgrind_control", "-e", "Ir", str(pid)], capture_output=True, text=True).stdout
    return sum(int(x.replace(",", "")) for x in re.findall(r"Th\s*\d+\s+([\d,]+)", out))


def measure(args: argparse.Namespace) -> dict[str, Any]:
    n = args.n
    res: dict[str, Any] = {}
    with scratch_dir("tl-bench-instr-") as tmp, fake_llm_service(0, 0, 20) as llm:
        with server(tmp / "data", llm.url + "/v1", args.src, args.mode, tmp / "callgrind.out") as srv:
            db = sqlite3.connect(f"file:{tmp / 'data' / 'threadline.db'}?mode=ro", uri=True)
            assistant = create_assistant(srv.port)
            lists = asyncio.run(setup_threads(srv.port, 2))
            fresh = asyncio.run(setup_threads(srv.port, 2 * n + 6))
            asyncio.run(posts(srv.port, lists[0], 39))
            asyncio.run(queued(srv.port, assistant, fresh[:3], db))  # warm-up
            asyncio.run(streamed(srv.port, assistant, fresh[3:6]))
            asyncio.run(gets(srv.port, lists[0], 5))
            asyncio.run(posts(srv.port, lists[1], 5))
            phases = {
                "idle": (1, lambda: asyncio.sleep(10)),
                "queued run": (n, lambda: queued(srv.port, assistant, fresh[6 : 6 + n], db)),
                "streamed run": (n, lambda: streamed(srv.port, assistant, fresh[6 + n :])),
                "GET messages?limit=20": (5 * n, lambda: gets(srv.port, lists[0], 5 * n)),
                "POST message": (5 * n, lambda: posts(srv.port, lists[1], 5 * n)),
            }
            idle_ir = idle_cpu = 0.0
            for name, (count, job) in phases.items():
                if args.mode == "callgrind":
                    subprocess.run(["callgrind_control", "-z", str(srv.pid)], capture_output=True)
                    subprocess.run(["callgrind_control", "-i", "on", str(srv.pid)], capture_output=True)
                cpu0, t0 = cpu_seconds(srv.pid), time.perf_counter()
                asyncio.run(job())
                wall = time.perf_counter() - t0
                cpu = cpu_seconds(srv.pid) - cpu0
                row: dict[str, Any] = {"ops": count, "wall_s": round(wall, 2)}
                if name == "idle":
                    idle_cpu = cpu / wall
                row["cpu_ms_per_op"] = round(1000 * (cpu - idle_cpu * wall) / count, 3)
                if args.mode == "callgrind":
                    ir = instructions(srv.pid)
                    subprocess.run(["callgrind_control", "-i", "off", str(srv.pid)], capture_output=True)
                    if name == "idle":
                        idle_ir = ir / wall
                    row["instructions_M_per_op"] = round((ir - idle_ir * wall) / count / 1e6, 3)
                log(f"  {name}: {row}")
                res[name] = row
            db.close()
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=15, help="runs per run phase; 5x as many message requests")
    parser.add_argument("--mode", choices=("callgrind", "cpu"), default="callgrind", help="default callgrind")
    parser.add_argument("--src", type=Path, default=REPO / "src", help="the src/ directory to measure")
    args = parser.parse_args(argv)
    res = {"benchmark": "instructions", "machine": machine(), "src": str(args.src), "phases": measure(args)}
    log(f"results: {save_json('instructions.json', res)}")
    for name, row in res["phases"].items():
        if name != "idle":
            extra = f", {row['instructions_M_per_op']} M instructions" if "instructions_M_per_op" in row else ""
            print(f"{name}: {row['cpu_ms_per_op']} ms CPU{extra} per operation")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
