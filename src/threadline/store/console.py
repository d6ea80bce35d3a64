"""Read-only queries of the web console's extension endpoints (/v1/console/*): thread summaries and token usage.

Wire objects are JSON text in `data`; the JSON helpers here work on both backends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from . import schema
from .sql import loads, owned

TOP_N = 10


def _json_text(conn: sa.Connection, column: sa.ColumnElement, *path: str) -> sa.ColumnElement:
    """The text at `path` inside the JSON text `column` (NULL when absent)."""
    if conn.dialect.name == "postgresql":
        return sa.func.jsonb_extract_path_text(sa.cast(column, JSONB), *path)
    return sa.func.json_extract(column, "$." + ".".join(path))  # paths here are constants, never user input


def _json_int(conn: sa.Connection, column: sa.ColumnElement, *path: str) -> sa.ColumnElement:
    return sa.func.coalesce(sa.cast(_json_text(conn, column, *path), sa.BigInteger), 0)


def _metadata_equals(conn: sa.Connection, column: sa.ColumnElement, key: str, value: str) -> sa.ColumnElement:
    if conn.dialect.name == "postgresql":
        return sa.func.jsonb_extract_path_text(sa.cast(column, JSONB), "metadata", key) == value
    each = sa.func.json_each(column, "$.metadata").table_valued("key", "value")
    return sa.exists(sa.select(sa.literal(1)).select_from(each).where(each.c.key == key, each.c.value == value))


def _usage_columns(conn: sa.Connection) -> list[sa.ColumnElement]:
    t = schema.runs
    return [
        sa.func.sum(_json_int(conn, t.c.data, "usage", "prompt_tokens")).label("prompt_tokens"),
        sa.func.sum(_json_int(conn, t.c.data, "usage", "completion_tokens")).label("completion_tokens"),
        sa.func.sum(_json_int(conn, t.c.data, "usage", "total_tokens")).label("total_tokens"),
    ]


def usage_of(row: Any) -> dict[str, int]:
    """prompt/completion/total tokens of a row with summed usage columns (all 0 for None)."""
    if row is None:
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    return {
        "prompt_tokens": int(row.prompt_tokens or 0),
        "completion_tokens": int(row.completion_tokens or 0),
        "total_tokens": int(row.total_tokens or 0),
    }


@dataclass
class ThreadFilter:
    """`id_prefix` (a thread id or its beginning), threads with a run of `assistant_id`, `metadata_key` equal to
    `metadata_value`, created in [`since`, `until`), older than the thread `after` (a cursor)."""

    id_prefix: str | None = None
    assistant_id: str | None = None
    metadata_key: str | None = None
    metadata_value: str = ""
    since: int | None = None
    until: int | None = None
    after: str | None = None


def threads(conn: sa.Connection, where: ThreadFilter, limit: int) -> tuple[list[tuple[str, dict]], bool]:
    """Threads matching `where`, newest first: up to `limit` (id, thread object) pairs, and whether more match."""
    t = schema.threads
    conds: list[sa.ColumnElement] = [owned(t)]
    if where.id_prefix:
        escaped = where.id_prefix.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conds.append(t.c.id.like(escaped + "%", escape="\\"))
    if where.assistant_id:
        r = schema.runs
        conds.append(t.c.id.in_(sa.select(r.c.thread_id).where(owned(r, r.c.assistant_id == where.assistant_id))))
    if where.metadata_key:
        conds.append(_metadata_equals(conn, t.c.data, where.metadata_key, where.metadata_value))
    if where.since is not None:
        conds.append(t.c.created_at >= where.since)
    if where.until is not None:
        conds.append(t.c.created_at < where.until)
    if where.after:
        seq = conn.execute(sa.select(t.c.seq).where(owned(t, t.c.id == where.after))).scalar()
        if seq is not None:
            conds.append(t.c.seq < seq)
    rows = conn.execute(sa.select(t.c.id, t.c.data).where(*conds).order_by(t.c.seq.desc()).limit(limit + 1)).all()
    return [(r.id, loads(r.data)) for r in rows[:limit]], len(rows) > limit


def thread_summaries(conn: sa.Connection, ids: list[str]) -> dict[str, dict[str, Any]]:
    """thread id -> message_count, run_count, last_run, assistant_ids and summed run usage (of threads of the current
    project: `threads` found them)."""
    if not ids:
        return {}
    m, r = schema.messages, schema.runs
    out: dict[str, dict[str, Any]] = {
        i: {"message_count": 0, "run_count": 0, "last_run": None, "assistant_ids": [], "usage": usage_of(None)}
        for i in ids
    }
    for thread_id, count in conn.execute(
        sa.select(m.c.thread_id, sa.func.count())
        .where(m.c.thread_id.in_(ids), m.c.type == "message")
        .group_by(m.c.thread_id)
    ):
        out[thread_id]["message_count"] = int(count)
    for row in conn.execute(
        sa.select(r.c.thread_id, sa.func.count().label("runs"), *_usage_columns(conn))
        .where(r.c.thread_id.in_(ids))
        .group_by(r.c.thread_id)
    ):
        out[row.thread_id]["run_count"] = int(row.runs)
        out[row.thread_id]["usage"] = usage_of(row)
    for thread_id, assistant_id in conn.execute(
        sa.select(r.c.thread_id, r.c.assistant_id).where(r.c.thread_id.in_(ids)).distinct()
    ):
        out[thread_id]["assistant_ids"].append(assistant_id)
    last_seq = sa.func.max(r.c.seq).label("seq")
    last = sa.select(r.c.thread_id, last_seq).where(r.c.thread_id.in_(ids)).group_by(r.c.thread_id).subquery()
    for row in conn.execute(
        sa.select(r.c.thread_id, r.c.id, r.c.status, r.c.assistant_id, r.c.created_at).join(
            last, sa.and_(last.c.thread_id == r.c.thread_id, last.c.seq == r.c.seq)
        )
    ):
        out[row.thread_id]["last_run"] = {
            "id": row.id,
            "status": row.status,
            "assistant_id": row.assistant_id,
            "created_at": row.created_at,
        }
    for summary in out.values():
        summary["assistant_ids"].sort()
    return out


@dataclass
class Usage:
    buckets: list[Any]  # rows: day, model, assistant_id, runs and summed usage
    top_threads: list[Any]  # rows: thread_id, runs and summed usage
    top_runs: list[Any]  # rows: id, thread_id, assistant_id, status, created_at, data


def usage(conn: sa.Connection, since: int, until: int, day_s: int) -> Usage:
    """Run tokens in [since, until) per `day_s` bucket, model and assistant, and the TOP_N threads and runs that
    used the most."""
    r = schema.runs
    model = _json_text(conn, r.c.data, "model")
    day = (r.c.created_at - r.c.created_at % day_s).label("day")
    window = owned(r, r.c.created_at >= since, r.c.created_at < until)
    buckets = conn.execute(
        sa.select(day, model.label("model"), r.c.assistant_id, sa.func.count().label("runs"), *_usage_columns(conn))
        .where(window)
        .group_by(day, model, r.c.assistant_id)
        .order_by(day)
    ).all()
    total = _json_int(conn, r.c.data, "usage", "total_tokens")
    top_threads = conn.execute(
        sa.select(r.c.thread_id, sa.func.count().label("runs"), *_usage_columns(conn))
        .where(window)
        .group_by(r.c.thread_id)
        .order_by(sa.func.sum(total).desc(), r.c.thread_id)
        .limit(TOP_N)
    ).all()
    top_runs = conn.execute(
        sa.select(r.c.id, r.c.thread_id, r.c.assistant_id, r.c.status, r.c.created_at, r.c.data)
        .where(window)
        .order_by(total.desc(), r.c.seq.desc())
        .limit(TOP_N)
    ).all()
    return Usage(buckets, top_threads, top_runs)
