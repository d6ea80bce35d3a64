"""Console routes: the page and its static files, and the read-only extension endpoints the /v1 API lacks.

Extensions (all GET, all under /v1 so the API-key check and, later, project scoping apply to them as to any call):

    /v1/console/session   what the console may show: auth mode, store backend, projects and cost (not there yet)
    /v1/console/threads   list and search threads, with message/run counts, last run and token totals
    /v1/console/usage     tokens per day by model and assistant, and the threads and runs that used the most
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.dialects.postgresql import JSONB

from ..api.common import check_id, check_no_nul, json, runtime
from ..api.errors import bad_request, invalid_id
from ..ids import PREFIXES, has_prefix
from ..store import loads, schema

STATIC_DIR = Path(__file__).resolve().parent / "static"
DAY_S = 86_400
MAX_USAGE_DAYS = 366
TOP_N = 10
MAX_TIMESTAMP = 253_402_300_799  # 9999-12-31T23:59:59Z: beyond it, times overflow the BIGINT columns' comparisons

# The page loads nothing from elsewhere; images are blob: URLs made from /v1/files/{id}/content.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
PAGE_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}

api = APIRouter(prefix="/v1/console", tags=["console"])


def install(app: FastAPI) -> None:
    """Serve the console at `/` and `/console/*`, and its extension endpoints under `/v1/console/`."""

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)

    app.include_router(api)
    app.mount("/console", StaticFiles(directory=STATIC_DIR), name="console")


# -- JSON helpers that work on both backends (wire objects are JSON text in `data`) ---------------------------------


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


def _usage(row: Any) -> dict[str, int]:
    if row is None:
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    return {
        "prompt_tokens": int(row.prompt_tokens or 0),
        "completion_tokens": int(row.completion_tokens or 0),
        "total_tokens": int(row.total_tokens or 0),
    }


def _timestamp(param: str, value: str | None) -> int | None:
    """Unix seconds, or a date/time in ISO 8601 (UTC when no offset is given)."""
    if value is None or value == "":
        return None
    check_no_nul(param, value)
    if value.isdigit():
        if len(value) > 12 or int(value) > MAX_TIMESTAMP:
            raise bad_request(f"Invalid '{param}': {value[:64]} is after the year 9999.", param=param)
        return int(value)
    from datetime import UTC, datetime

    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise bad_request(
            f"Invalid '{param}': expected Unix seconds or an ISO 8601 date, got {value[:64]!r}.", param=param
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


# -- endpoints ------------------------------------------------------------------------------------------------------


@api.get("/session")
def session(request: Request) -> Response:
    """What this key may see. `projects`/`project` and `cost_available` are placeholders for project tenancy and
    cost accounting: null/false until those exist, so the console shows tokens only and no project switcher."""
    rt = runtime(request)
    return json(
        {
            "object": "console.session",
            "auth": "api_key" if rt.keys.enabled else "open",
            "backend": rt.store.backend,
            "project": None,
            "projects": None,
            "cost_available": False,
        }
    )


@api.get("/threads")
def list_threads(
    request: Request,
    limit: int = Query(20, ge=1, le=100),
    after: str | None = Query(None),
    q: str | None = Query(None, max_length=256),
    assistant_id: str | None = Query(None),
    metadata_key: str | None = Query(None, max_length=64),
    metadata_value: str | None = Query(None, max_length=512),
    created_after: str | None = Query(None),
    created_before: str | None = Query(None),
) -> Response:
    """Threads, newest first, each with `message_count`, `run_count`, `last_run` and summed run `usage`.

    Filters: `q` (a thread id or its beginning), `assistant_id` (threads with a run of that assistant),
    `metadata_key` + `metadata_value` (exact match), `created_after` / `created_before` (Unix seconds or ISO date).
    Cursor pagination with `after` (a thread id), as in the rest of the API.
    """
    rt = runtime(request)
    t = schema.threads
    for name, value in (("q", q), ("metadata_key", metadata_key), ("metadata_value", metadata_value)):
        check_no_nul(name, value)
    if assistant_id and not has_prefix("assistant", assistant_id):
        raise invalid_id("assistant_id", assistant_id, PREFIXES["assistant"])
    since, until = _timestamp("created_after", created_after), _timestamp("created_before", created_before)
    with rt.store.read() as conn:
        where: list[sa.ColumnElement] = []
        if q:
            escaped = q.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append(t.c.id.like(escaped + "%", escape="\\"))
        if assistant_id:
            r = schema.runs
            where.append(t.c.id.in_(sa.select(r.c.thread_id).where(r.c.assistant_id == assistant_id)))
        if metadata_key:
            where.append(_metadata_equals(conn, t.c.data, metadata_key, metadata_value or ""))
        if since is not None:
            where.append(t.c.created_at >= since)
        if until is not None:
            where.append(t.c.created_at < until)
        if after:
            check_id("thread", after, "after")
            seq = conn.execute(sa.select(t.c.seq).where(t.c.id == after)).scalar()
            if seq is not None:
                where.append(t.c.seq < seq)
        rows = conn.execute(sa.select(t.c.id, t.c.data).where(*where).order_by(t.c.seq.desc()).limit(limit + 1)).all()
        has_more = len(rows) > limit
        rows = rows[:limit]
        ids = [r.id for r in rows]
        summaries = _thread_summaries(conn, ids)
    data = []
    for row in rows:
        thread = loads(row.data)
        data.append({**thread, "object": "console.thread", **summaries.get(row.id, {})})
    return json(
        {
            "object": "list",
            "data": data,
            "first_id": ids[0] if ids else None,
            "last_id": ids[-1] if ids else None,
            "has_more": has_more,
        }
    )


def _thread_summaries(conn: sa.Connection, ids: list[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    m, r = schema.messages, schema.runs
    out: dict[str, dict[str, Any]] = {
        i: {"message_count": 0, "run_count": 0, "last_run": None, "assistant_ids": [], "usage": _usage(None)}
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
        out[row.thread_id]["usage"] = _usage(row)
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


@api.get("/usage")
def usage(
    request: Request,
    days: int = Query(30, ge=1, le=MAX_USAGE_DAYS),
    end: str | None = Query(None),
) -> Response:
    """Run tokens per UTC day by model and assistant over the `days` days ending at `end` (default: now), plus the
    TOP_N threads and runs that used the most tokens. `cost` is null until cost accounting exists."""
    rt = runtime(request)
    until = _timestamp("end", end) or int(time.time())
    until = until - until % DAY_S + DAY_S  # through the end of that UTC day
    since = until - days * DAY_S
    r = schema.runs
    with rt.store.read() as conn:
        model = _json_text(conn, r.c.data, "model")
        day = (r.c.created_at - r.c.created_at % DAY_S).label("day")
        window = sa.and_(r.c.created_at >= since, r.c.created_at < until)
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
    runs_out = []
    for row in top_runs:
        run = loads(row.data)
        runs_out.append(
            {
                "id": row.id,
                "thread_id": row.thread_id,
                "assistant_id": row.assistant_id,
                "status": row.status,
                "model": run.get("model"),
                "created_at": row.created_at,
                "usage": run.get("usage") or _usage(None),
                "cost": None,
            }
        )
    return json(
        {
            "object": "console.usage",
            "start": since,
            "end": until,
            "cost_available": False,
            "buckets": [
                {
                    "day": int(b.day),
                    "model": b.model or "",
                    "assistant_id": b.assistant_id,
                    "project_id": None,
                    "runs": int(b.runs),
                    **_usage(b),
                    "cost": None,
                }
                for b in buckets
            ],
            "top_threads": [
                {"thread_id": row.thread_id, "runs": int(row.runs), "usage": _usage(row), "cost": None}
                for row in top_threads
            ],
            "top_runs": runs_out,
        }
    )
