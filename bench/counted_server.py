"""`threadline serve` with its database transactions counted, for bench_run_cost.py (never used in production).

Every SQLAlchemy transaction begun (and those that write: `store.write()` marks them with conn.info["write"]) is
counted by a class-level engine event; a daemon thread writes the counts to $BENCH_TX_FILE as "begins writes"
every 20 ms.

    python bench/counted_server.py serve --port 8000 ...
"""

from __future__ import annotations

import os
import sys
import threading
import time

import sqlalchemy as sa
from sqlalchemy import event

counts = [0, 0]


@event.listens_for(sa.engine.Engine, "begin")
def _begin(conn: sa.Connection) -> None:
    counts[0] += 1
    if conn.info.get("write"):
        counts[1] += 1


def _report(path: str) -> None:
    while True:
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            f.write(f"{counts[0]} {counts[1]}")
        os.replace(tmp, path)
        time.sleep(0.02)


if __name__ == "__main__":
    threading.Thread(target=_report, args=(os.environ["BENCH_TX_FILE"],), daemon=True).start()
    from threadline.cli import main

    sys.exit(main(sys.argv[1:]))
