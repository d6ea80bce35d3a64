"""Per-request cost of the API-key check: the table lookup every authenticated request makes.

Times `KeyChecker.verify` in-process (what the middleware calls once per /v1 request) on SQLite and PostgreSQL
with 1,000 stored keys: a valid key, a wrong key, and no key; and how soon a revoke made from another connection
is seen. For comparison, the check it replaced (hashing the key
and comparing it with an in-memory set loaded at start-up).

    .venv/bin/python bench/bench_auth.py [--backends sqlite,postgres] [--calls 20000]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO)]

from support.postgres import PostgresCluster  # noqa: E402
from threadline.auth import KeyChecker, Verdict  # noqa: E402
from threadline.store import Store  # noqa: E402

STORED = 1000


def per_call_us(fn, calls: int) -> float:  # noqa: ANN001
    for _ in range(200):
        fn()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls * 1e6


def measure(url: str, calls: int) -> dict[str, float]:
    store = Store(url)
    store.migrate()
    keys = KeyChecker(store, [])
    keys.start()
    deadline = time.monotonic() + 10
    while keys._listener is not None and not keys._listener.live and time.monotonic() < deadline:
        time.sleep(0.01)
    for i in range(STORED):
        keys.add(f"sk-tl-bench-{i:06d}", f"k{i}")
    valid = "sk-tl-bench-000500"
    assert keys.verify(valid) is Verdict.OK and keys.verify("nope") is Verdict.INVALID
    hashes = {hashlib.sha256(f"sk-tl-bench-{i:06d}".encode()).hexdigest() for i in range(STORED)}

    def old_check() -> bool:  # the previous in-memory check (keys loaded once at start-up)
        digest = hashlib.sha256(valid.encode()).hexdigest()
        return any(hmac.compare_digest(digest, h) for h in hashes)

    out = {
        "valid key": per_call_us(lambda: keys.verify(valid), calls),
        "wrong key": per_call_us(lambda: keys.verify("sk-tl-wrong"), calls),
        "no key": per_call_us(lambda: keys.verify(None), calls),
        "old in-memory check": per_call_us(old_check, calls // 10),
    }
    # how long after a revoke commits (as `threadline revoke-key` does, from another connection) it is seen
    cli = KeyChecker(store, [])
    t0 = time.perf_counter()
    cli.revoke(key=valid)
    while keys.verify(valid) is Verdict.OK:
        pass
    out["revoke seen after"] = (time.perf_counter() - t0) * 1e6
    keys.close()
    store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    for backend in args.backends.split(","):
        cluster = None
        with tempfile.TemporaryDirectory() as tmp:
            if backend == "postgres":
                cluster = PostgresCluster.start()
                url = cluster.create_database()
            else:
                url = f"sqlite:///{tmp}/auth.db"
            try:
                for name, us in measure(url, args.calls).items():
                    unit = "µs" if name == "revoke seen after" else "µs/request"
                    print(f"{backend:8s} {name:20s} {us:8.1f} {unit}", flush=True)
            finally:
                if cluster is not None:
                    cluster.stop()


if __name__ == "__main__":
    main()
