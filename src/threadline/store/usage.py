"""Usage records: one row per billable happening (schema.usage_records), and their sums per time bucket and group.

Kinds: `completion` (one model call, i.e. one turn of a run or of a response, or a compaction: tokens, model,
provider, latency), `embedding` (the chunks of one ingested file: their tokens), `file_search_call` (the
file_search calls of one turn: `quantity`), `code_interpreter_session` (a thread's sandbox session or a response's
container opened: one per thread or container per SESSION_S), `vector_store_bytes` (a store's largest
`usage_bytes` on one UTC day: `quantity`, kept up to date by the maintenance pass).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..tenancy import project_id
from . import schema
from .sql import dumps

SESSION_S = 3600  # a code-interpreter session is billed per hour of a thread's use, as OpenAI does
DAY_S = 86400
KINDS = ("completion", "embedding", "file_search_call", "code_interpreter_session", "vector_store_bytes")
# Columns `group_by` may name (OpenAI's, plus the extensions assistant_id and thread_id).
GROUP_COLUMNS = ("project_id", "api_key_id", "model", "assistant_id", "thread_id", "vector_store_id")


def record(conn: sa.Connection, kind: str, at: int, *, data: dict[str, Any] | None = None, **cols: Any) -> None:
    """Insert one usage row of `kind` at `at` (Unix seconds) in `conn`'s transaction; `cols` are usage_records
    columns (tokens, ids, model, quantity, latency_ms); `data` is kept as JSON (e.g. the prompt's parts)."""
    assert kind in KINDS, kind
    cols.setdefault("project_id", project_id())
    conn.execute(
        schema.usage_records.insert().values(
            kind=kind, created_at=at, data=dumps(data) if data is not None else None, **cols
        )
    )


def record_file_searches(conn: sa.Connection, at: int, references: list[dict[str, Any]], **cols: Any) -> None:
    """Record file_search calls (one per `references` entry: the call's references, with the `vector_store_ids`
    it searched): a row per store for the calls that searched one store (its `vector_store_id`), and one row
    without a store for calls that searched several or none; `quantity` is the number of calls."""
    counts: dict[str | None, int] = {}
    for ref in references:
        stores = ref.get("vector_store_ids") or []
        key = stores[0] if len(stores) == 1 else None
        counts[key] = counts.get(key, 0) + 1
    for store_id, calls in counts.items():
        record(conn, "file_search_call", at, vector_store_id=store_id, quantity=calls, **cols)


def open_session(
    conn: sa.Connection, thread_id: str | None, at: int, *, container_id: str | None = None, **cols: Any
) -> bool:
    """Count a code-interpreter session at `at` unless one began in the last SESSION_S seconds in the same place:
    the container `container_id` when given (a response's), else the thread `thread_id` (a run's sandbox session).
    Returns whether a new session was recorded."""
    t = schema.usage_records
    where = t.c.container_id == container_id if container_id is not None else t.c.thread_id == thread_id
    recent = conn.execute(
        sa.select(t.c.seq)
        .where(where, t.c.kind == "code_interpreter_session", t.c.created_at > at - SESSION_S)
        .limit(1)
    ).first()
    if recent is not None:
        return False
    record(conn, "code_interpreter_session", at, thread_id=thread_id, container_id=container_id, quantity=1, **cols)
    return True


def snapshot_vector_stores(conn: sa.Connection, at: int) -> int:
    """Record each vector store's `usage_bytes` for the UTC day holding `at`: one row per store and day (its
    `created_at` the day's start) holding the largest size seen that day. Returns how many rows were added or
    raised."""
    from .sql import loads

    day = at - at % DAY_S
    t = schema.usage_records
    today = dict(
        conn.execute(
            sa.select(t.c.vector_store_id, t.c.quantity).where(t.c.kind == "vector_store_bytes", t.c.created_at == day)
        ).all()
    )
    v = schema.vector_stores
    projects = dict(conn.execute(sa.select(v.c.id, v.c.project_id)).all())  # each row is its store's project's
    sizes = dict.fromkeys(projects, 0)
    f = schema.vector_store_files
    for store_id, raw in conn.execute(sa.select(f.c.vector_store_id, f.c.data).where(f.c.status == "completed")):
        if store_id in sizes:  # a store's size is its completed files' (as the API reports it)
            sizes[store_id] += int(loads(raw).get("usage_bytes") or 0)
    changed = 0
    for store_id, size in sizes.items():
        if store_id not in today:
            record(
                conn, "vector_store_bytes", day, vector_store_id=store_id, quantity=size, project_id=projects[store_id]
            )
        elif size > today[store_id]:
            conn.execute(
                t.update()
                .where(t.c.kind == "vector_store_bytes", t.c.created_at == day, t.c.vector_store_id == store_id)
                .values(quantity=size)
            )
        else:
            continue
        changed += 1
    return changed


@dataclass(frozen=True)
class Sums:
    """One group's totals in one bucket."""

    group: dict[str, Any]  # group_by column -> value
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    quantity: int
    rows: int


def sums(
    conn: sa.Connection,
    kinds: tuple[str, ...],
    start: int,
    end: int,
    width: int,
    group_by: tuple[str, ...],
    filters: dict[str, list[str]],
) -> dict[int, list[Sums]]:
    """Totals of the rows of `kinds` with start <= created_at < end, per bucket of `width` seconds (aligned to
    `start`) and per distinct value of the `group_by` columns; `filters` keeps rows whose column is in the list.
    Returns {bucket start: [Sums]} with only the buckets that have rows."""
    t = schema.usage_records
    inner = sa.select(t, (start + ((t.c.created_at - start) // width) * width).label("bucket")).where(
        t.c.kind.in_(kinds), t.c.created_at >= start, t.c.created_at < end
    )
    for name, values in filters.items():
        inner = inner.where(t.c[name].in_(values))
    r = inner.subquery()
    groups = [r.c[name] for name in group_by]
    query = (
        sa.select(
            r.c.bucket,
            *groups,
            sa.func.coalesce(sa.func.sum(r.c.input_tokens), 0),
            sa.func.coalesce(sa.func.sum(r.c.cached_input_tokens), 0),
            sa.func.coalesce(sa.func.sum(r.c.output_tokens), 0),
            sa.func.coalesce(sa.func.sum(r.c.quantity), 0),
            sa.func.count(),
        )
        .group_by(r.c.bucket, *groups)
        .order_by(r.c.bucket, *groups)
    )
    out: dict[int, list[Sums]] = {}
    for row in conn.execute(query):
        group = {name: row[1 + i] for i, name in enumerate(group_by)}
        rest = row[1 + len(group_by) :]
        out.setdefault(int(row[0]), []).append(Sums(group, *(int(v) for v in rest)))
    return out


def execution_rows(conn: sa.Connection, column: str, value: str, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    """The rows of `kinds` whose `column` (run_id, response_id) is `value`, oldest first, `data` decoded."""
    from .sql import loads

    t = schema.usage_records
    rows = conn.execute(sa.select(t).where(t.c[column] == value, t.c.kind.in_(kinds)).order_by(t.c.seq)).mappings()
    return [{**row, "data": loads(row["data"]) if row["data"] else {}} for row in rows]
