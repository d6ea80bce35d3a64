"""Read-only queries of the web console's extension endpoints (/v1/console/*): thread summaries, and usage and
spend from the usage records (the rows /v1/organization/usage and /costs sum).

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


# -- usage and spend (usage_records) ----------------------------------------------------------------------------


def _in_projects(projects: list[str] | None) -> list[sa.ColumnElement]:
    return [] if projects is None else [schema.usage_records.c.project_id.in_(projects)]


def window_models(conn: sa.Connection, since: int, until: int, projects: list[str] | None) -> list[str]:
    """The models of the completion and embedding records in [since, until) of the `projects`."""
    t = schema.usage_records
    query = (
        sa.select(t.c.model)
        .where(
            t.c.kind.in_(("completion", "embedding")),
            t.c.model.is_not(None),
            t.c.created_at >= since,
            t.c.created_at < until,
            *_in_projects(projects),
        )
        .distinct()
    )
    return list(conn.execute(query).scalars())


def costliest(
    conn: sa.Connection,
    by: str,
    since: int,
    until: int,
    projects: list[str] | None,
    model_prices: dict[str, tuple[float, float, float]],
    tool_prices: dict[str, float],
    limit: int = TOP_N,
) -> list[sa.Row]:
    """The `limit` threads, or runs and responses (`by` = "thread_id" or "execution"), of [since, until) that cost
    the most, then used the most tokens: rows of id, thread_id, project_id, assistant_id, model, requests, input_tokens,
    cached_input_tokens, output_tokens, cost. `model_prices` maps a model to USD per million (input, cached input,
    output) tokens; `tool_prices` a tool usage kind to USD per unit of `quantity`; anything else costs 0."""
    t = schema.usage_records
    assert by in ("thread_id", "execution"), by
    uncached = t.c.input_tokens - t.c.cached_input_tokens
    model_cost = (
        sa.case(
            *(
                (t.c.model == model, uncached * p_in + t.c.cached_input_tokens * p_cached + t.c.output_tokens * p_out)
                for model, (p_in, p_cached, p_out) in model_prices.items()
            ),
            else_=0.0,
        )
        if model_prices
        else None
    )
    branches = [(t.c.kind == "completion", model_cost / 1e6)] if model_prices else []
    branches += [(t.c.kind == kind, t.c.quantity * price) for kind, price in tool_prices.items()]
    cost = sa.case(*branches, else_=0.0) if branches else sa.literal(0.0)
    completion = t.c.kind == "completion"
    tokens = sa.case((completion, t.c.input_tokens + t.c.output_tokens), else_=0)
    cost_sum = sa.func.sum(cost).label("cost")
    key = t.c.thread_id if by == "thread_id" else sa.func.coalesce(t.c.run_id, t.c.response_id)
    query = (
        sa.select(
            key.label("id"),
            sa.func.max(t.c.thread_id).label("thread_id"),
            sa.func.max(t.c.project_id).label("project_id"),
            sa.func.max(t.c.assistant_id).label("assistant_id"),
            sa.func.max(t.c.model).label("model"),
            sa.func.sum(sa.case((completion, 1), else_=0)).label("requests"),
            sa.func.sum(sa.case((completion, t.c.input_tokens), else_=0)).label("input_tokens"),
            sa.func.sum(sa.case((completion, t.c.cached_input_tokens), else_=0)).label("cached_input_tokens"),
            sa.func.sum(sa.case((completion, t.c.output_tokens), else_=0)).label("output_tokens"),
            cost_sum,
        )
        .where(key.is_not(None), t.c.created_at >= since, t.c.created_at < until, *_in_projects(projects))
        .group_by(key)
        .order_by(cost_sum.desc(), sa.func.sum(tokens).desc(), key)
        .limit(limit)
    )
    return conn.execute(query).all()


def execution_facts(conn: sa.Connection, ids: list[str]) -> dict[str, dict[str, Any]]:
    """run or response id -> {status, model, created_at} for those among `ids` that still exist."""
    out: dict[str, dict[str, Any]] = {}
    for table in (schema.runs, schema.responses):
        if not ids:
            break
        rows = conn.execute(
            sa.select(table.c.id, table.c.status, table.c.created_at, table.c.data).where(
                owned(table, table.c.id.in_(ids))
            )
        ).all()
        for row in rows:
            out[row.id] = {"status": row.status, "created_at": row.created_at, "model": loads(row.data).get("model")}
    return out
