"""Runs: the Assistants execution table and its children (run steps, the run's messages).

The lease, claim and guarded-write SQL is store/executions.py's (shared with any other execution table); this
module adds what is particular to runs: inserting one, and the close-out of a run's open steps and messages, the
one routine every ending uses (the executor's completion and failure, a cancel, crash recovery and expiry).
"""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa

from . import driver, executions, schema
from .sql import Store, dumps, loads

TERMINAL = ("completed", "failed", "cancelled", "expired", "incomplete")
# A run's ending -> (the status its open steps get, the incomplete_details.reason of its open messages; None:
# open messages are left as they are, since the ending itself closed them).
CLOSE_OUT: dict[str, tuple[str, str | None]] = {
    "completed": ("completed", None),
    "incomplete": ("completed", "max_tokens"),
    "failed": ("failed", "run_failed"),
    "cancelled": ("cancelled", "run_cancelled"),
    "expired": ("expired", "run_expired"),
}
STEP_STAMP = {"completed": "completed_at", "cancelled": "cancelled_at", "failed": "failed_at", "expired": "expired_at"}
RUN_STAMP = {"completed": "completed_at", "failed": "failed_at", "cancelled": "cancelled_at"}


def insert(conn: sa.Connection, run: dict[str, Any], state: dict[str, Any]) -> None:
    """Store a new (queued) run with its initial working state."""
    Store.insert(
        conn,
        schema.runs,
        run,
        thread_id=run["thread_id"],
        assistant_id=run["assistant_id"],
        status=run["status"],
        expires_at=run["expires_at"],
        state=dumps(state),
    )


def close_out(
    conn: sa.Connection, run_id: str, ending: str, ts: int, events: list[tuple[str, dict]] | None = None
) -> None:
    """Close what run `run_id` left open as it ends as `ending` (a terminal status): its in-progress steps get
    CLOSE_OUT's step status, its in-progress messages become `incomplete` with CLOSE_OUT's reason. The step events
    to emit after the commit are appended to `events`."""
    step_status, reason = CLOSE_OUT[ending]
    t = schema.run_steps
    field = STEP_STAMP[step_status]
    lock = driver.for_update(conn)
    for (raw,) in driver.all_rows(conn, "SELECT data FROM run_steps WHERE run_id = ?" + lock, (run_id,)):
        step = orjson.loads(raw)
        if step["status"] != "in_progress":
            continue
        step["status"] = step_status
        step[field] = ts
        if step_status == "failed":
            step["last_error"] = {"code": "server_error", "message": "The run failed."}
        Store.update(conn, t, step)
        if events is not None:
            events.append((f"thread.run.step.{step_status}", step))
    if reason is None:
        return
    t = schema.messages
    for (raw,) in driver.all_rows(conn, "SELECT data FROM messages WHERE run_id = ?" + lock, (run_id,)):
        message = orjson.loads(raw)
        if message["status"] != "in_progress":
            continue
        message.update(status="incomplete", incomplete_at=ts, incomplete_details={"reason": reason})
        Store.update(conn, t, message)


def end(
    conn: sa.Connection,
    run: dict[str, Any],
    status: str,
    ts: int,
    events: list[tuple[str, dict]] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """End `run` (row-locked by the caller) as `status` in memory and close out its steps and messages; returns the
    columns to save with it (the lease is released). `fields` (last_error, incomplete_details, usage) are set on
    the run. The caller saves: `executions.save(conn, schema.runs, run, **cols)`."""
    run["status"] = status
    run["required_action"] = None
    if status != "expired":
        run["expires_at"] = None
    stamp = RUN_STAMP.get(status)
    if stamp:
        run[stamp] = ts
    run.update(fields)
    close_out(conn, run["id"], status, ts, events)
    return {"lease_owner": None}


def finish(conn: sa.Connection, run: dict[str, Any], status: str, ts: int, **fields: Any) -> None:
    """End and save `run` (row-locked by the caller), for those who end a run nobody drives: a cancel of a queued
    or waiting run, crash recovery, the expiry sweep."""
    executions.save(conn, schema.runs, run, **end(conn, run, status, ts, **fields))


def waiting_tool_step(conn: sa.Connection, run_id: str) -> dict[str, Any] | None:
    """The run's newest in-progress tool_calls step (the one waiting for function outputs), or None."""
    t = schema.run_steps
    for raw in conn.execute(sa.select(t.c.data).where(t.c.run_id == run_id).order_by(t.c.seq.desc())).scalars():
        step = loads(raw)
        if step["type"] == "tool_calls" and step["status"] == "in_progress":
            return step
    return None


def steps(conn: sa.Connection, run_id: str) -> list[dict[str, Any]]:
    """The run's steps in creation order."""
    rows = driver.all_rows(conn, "SELECT data FROM run_steps WHERE run_id = ? ORDER BY seq", (run_id,))
    return [loads(raw) for (raw,) in rows]
