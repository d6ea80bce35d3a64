"""Benchmark of the code_interpreter sandbox. Prints a markdown table.

    .venv/bin/python bench/bench_sandbox.py [--runs 10]

Measures, through SandboxManager (the API the run engine uses):
- cold start: a new session (no warm pool) until the result of ``print(1+1)`` is back;
- warm statement: a trivial statement in a live session (total overhead of one execute call);
- first pandas + plot call in a new session, with and without the warm pool;
- memory: RSS of idle sessions (every process of the session, bwrap included), as sessions per GiB.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from threadline.sandbox import SandboxManager

PLOT = (
    "import pandas as pd, matplotlib.pyplot as plt\n"
    "df = pd.DataFrame({'x': range(100), 'y': [i * i for i in range(100)]})\n"
    "df.plot(x='x', y='y')\n"
    "plt.savefig('/mnt/data/chart.png')\n"
)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def fmt_ms(values: list[float]) -> str:
    return f"p50 {statistics.median(values) * 1e3:.1f} ms, p95 {pct(values, 0.95) * 1e3:.1f} ms (n={len(values)})"


async def timed(m: SandboxManager, key: str, code: str) -> float:
    t0 = time.perf_counter()
    r = await m.execute(key, code)
    elapsed = time.perf_counter() - t0
    assert r.error is None, r.error
    return elapsed


async def bench(runs: int, root: Path) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    m = SandboxManager(root_dir=root, warm_pool=0, max_sessions=32)
    try:
        ok, reason = await m.start()
        assert ok, reason
        await timed(m, "prime", "print(1+1)")
        await m.close_session("prime")
        cold = []
        for i in range(runs):
            cold.append(await timed(m, f"cold{i}", "print(1+1)"))
            await m.close_session(f"cold{i}")
        rows.append(("Cold start to first result, `print(1+1)`, new session, no pool", fmt_ms(cold)))

        await timed(m, "warm", "x = 0")
        warm = [await timed(m, "warm", "x = x + 1") for _ in range(max(200, runs * 20))]
        rows.append(("Warm trivial statement (`x = x + 1`), full execute() call", fmt_ms(warm)))

        first_plot = []
        for i in range(max(3, runs // 2)):
            first_plot.append(await timed(m, f"plot{i}", PLOT))
            await m.close_session(f"plot{i}")
        rows.append(("First pandas + plot + savefig, new session, no pool", fmt_ms(first_plot)))
        second = [await timed(m, "plot-again", PLOT) for _ in range(5)]
        rows.append(("Same cell again in the same session", fmt_ms(second[1:])))

        # Memory of idle sessions.
        n = 8
        for i in range(n):
            await timed(m, f"idle{i}", "x = 1")
        bare = sum(m._sessions[f"idle{i}"].session.rss_bytes() for i in range(n)) / n
        for i in range(n):
            await timed(m, f"idle{i}", "import numpy, pandas, matplotlib.pyplot as plt\nplt.plot([1, 2]); plt.close()")
        loaded = sum(m._sessions[f"idle{i}"].session.rss_bytes() for i in range(n)) / n
        rows.append(
            (
                f"RSS per idle session (mean of {n}), bare interpreter",
                f"{bare / 2**20:.1f} MiB → {2**30 / bare:.0f} sessions per GiB",
            )
        )
        rows.append(
            (
                "RSS per idle session after numpy + pandas + matplotlib",
                f"{loaded / 2**20:.1f} MiB → {2**30 / loaded:.1f} sessions per GiB",
            )
        )
        cgroups = m.cgroups_enabled
    finally:
        await m.aclose()

    warm_first = []
    m = SandboxManager(root_dir=root, warm_pool=1)
    try:
        await m.start()
        for i in range(max(3, runs // 2)):
            while len(m._pool) < 1:  # wait for the pool to be refilled, as on an idle server
                await asyncio.sleep(0.05)
            warm_first.append(await timed(m, f"wp{i}", PLOT))
            await m.close_session(f"wp{i}")
        warm_cold = []
        for i in range(max(3, runs // 2)):
            while len(m._pool) < 1:
                await asyncio.sleep(0.05)
            warm_cold.append(await timed(m, f"wc{i}", "print(1+1)"))
            await m.close_session(f"wc{i}")
    finally:
        await m.aclose()
    rows.insert(3, ("First pandas + plot + savefig, new session, warm pool = 1", fmt_ms(warm_first)))
    rows.insert(1, ("First result, new session, warm pool = 1", fmt_ms(warm_cold)))
    rows.append(("cgroup v1 memory/pids/cpu limits active", "yes" if cgroups else "no (rlimits only)"))
    return rows


def machine_info() -> list[tuple[str, str]]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    bwrap = subprocess.run(["bwrap", "--version"], capture_output=True, text=True).stdout.strip()
    mem = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
    return [
        ("Date", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("CPU", f"{model}, nproc {os.cpu_count()}"),
        ("RAM", f"{mem} GiB"),
        ("Kernel", platform.release()),
        ("Sandbox", f"{bwrap}, running as {'root (per-session uids)' if os.geteuid() == 0 else 'non-root'}"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        rows = asyncio.run(bench(args.runs, Path(tmp)))
    print("| Machine | |\n| --- | --- |")
    for k, v in machine_info():
        print(f"| {k} | {v} |")
    print()
    print("| Measurement | Result |\n| --- | --- |")
    for k, v in rows:
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    main()
