"""Usage and costs in OpenAI's administration shapes (`/v1/organization/usage/*`, `/v1/organization/costs`), and
the per-run split of each turn's prompt (what the context re-sent: history, retrieved chunks, tool outputs).

Buckets are aligned to the bucket width in UTC (minutes, hours, days), from the bucket holding `start_time` up to
`end_time` (default: now); every bucket in the page is listed, empty ones with `results: []`. `page` is the start
of the next bucket (opaque to clients).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ..ids import conversation_id
from ..store import Store
from ..store import usage as records
from .errors import Invalid, NotFound
from .prices import Prices

WIDTHS = {"1m": 60, "1h": 3600, "1d": 86400}
# (default, max) buckets per page, per bucket width (OpenAI's).
LIMITS = {"1m": (60, 1440), "1h": (24, 168), "1d": (7, 31)}
COSTS_LIMITS = (7, 180)
PAGE_PREFIX = "page_"
PROMPT_PARTS = ("instructions", "history", "retrieved_chunks", "tool_outputs", "run_output")
RESPONSE_PROMPT_PARTS = ("instructions", "history", "input", "retrieved_chunks", "tool_outputs", "response_output")


@dataclass(frozen=True)
class Endpoint:
    """One usage endpoint: the record kinds it sums, its result object, the group_by values it accepts."""

    kinds: tuple[str, ...]
    object: str
    group_by: tuple[str, ...]


# group_by values are OpenAI's, plus the extensions assistant_id and thread_id where usage has them, and
# vector_store_id for vector store sizes.
ENDPOINTS = {
    "completions": Endpoint(
        ("completion",),
        "organization.usage.completions.result",
        ("project_id", "user_id", "api_key_id", "model", "batch", "service_tier", "assistant_id", "thread_id"),
    ),
    "embeddings": Endpoint(
        ("embedding",), "organization.usage.embeddings.result", ("project_id", "user_id", "api_key_id", "model")
    ),
    "code_interpreter_sessions": Endpoint(
        ("code_interpreter_session",),
        "organization.usage.code_interpreter_sessions.result",
        ("project_id", "assistant_id", "thread_id"),
    ),
    "vector_stores": Endpoint(
        ("vector_store_bytes",), "organization.usage.vector_stores.result", ("project_id", "vector_store_id")
    ),
    "file_search_calls": Endpoint(
        ("file_search_call",),
        "organization.usage.file_searches.result",
        ("project_id", "user_id", "api_key_id", "vector_store_id", "assistant_id", "thread_id"),
    ),
}
COSTS_GROUP_BY = ("project_id", "line_item", "api_key_id")
# Filters (query parameter -> column); user_ids and batch are OpenAI's but nothing here has a user or a batch.
FILTERS = {
    "project_ids": "project_id",
    "api_key_ids": "api_key_id",
    "models": "model",
    "assistant_ids": "assistant_id",
    "thread_ids": "thread_id",
}


@dataclass
class UsageQuery:
    """A parsed usage or costs query; times are Unix seconds."""

    start_time: int
    end_time: int | None = None
    bucket_width: str = "1d"
    group_by: list[str] = field(default_factory=list)
    filters: dict[str, list[str]] = field(default_factory=dict)  # column -> allowed values
    user_ids: list[str] | None = None
    batch: bool | None = None
    limit: int | None = None
    page: str | None = None


def _window(q: UsageQuery, now: int, limits: tuple[int, int]) -> tuple[int, int, int, bool]:
    """(first bucket start, end of the page's buckets, bucket width, has_more) for `q`."""
    width = WIDTHS[q.bucket_width]
    end = q.end_time if q.end_time is not None else now + 1  # up to and including this second
    if q.end_time is not None and q.end_time <= q.start_time:
        raise Invalid("Invalid 'end_time': it must be after start_time.", param="end_time")
    first = q.start_time - q.start_time % width
    if q.page is not None:
        raw = q.page.removeprefix(PAGE_PREFIX)
        valid = q.page.startswith(PAGE_PREFIX) and raw.isascii() and raw.isdigit() and len(raw) <= 15
        if not valid or int(raw) % width or int(raw) < first:
            raise Invalid("Invalid 'page': use the `next_page` value of a previous response.", param="page")
        first = int(raw)
    limit = q.limit if q.limit is not None else limits[0]
    if not 1 <= limit <= limits[1]:
        raise Invalid(
            f"Invalid 'limit': with bucket_width={q.bucket_width} it must be between 1 and {limits[1]}.", param="limit"
        )
    stop = min(end, first + limit * width)
    return first, stop, width, stop < end


def _page(first: int, stop: int, width: int, has_more: bool, results: dict[int, list[dict]]) -> dict[str, Any]:
    data = [
        {"object": "bucket", "start_time": s, "end_time": s + width, "results": results.get(s, [])}
        for s in range(first, stop, width)
    ]
    return {
        "object": "page",
        "data": data,
        "has_more": has_more,
        "next_page": f"{PAGE_PREFIX}{stop}" if has_more else None,
    }


def _no_rows(q: UsageQuery) -> bool:
    """Nothing here has a user or a batch: filtering on users or on batch=true leaves no rows."""
    return bool(q.user_ids) or q.batch is True


def _sums(
    conn: sa.Connection, kinds: tuple[str, ...], q: UsageQuery, first: int, stop: int, width: int, columns: list[str]
) -> dict[int, list[records.Sums]]:
    if _no_rows(q) or stop <= first:
        return {}
    return records.sums(conn, kinds, first, stop, width, tuple(columns), q.filters)


def _group_fields(endpoint: str, group: dict[str, Any], group_by: list[str]) -> dict[str, Any]:
    """The grouping fields of a result: OpenAI's are present (null unless grouped by); extensions only if asked."""
    spec = {
        "completions": ("project_id", "user_id", "api_key_id", "model", "batch", "service_tier"),
        "embeddings": ("project_id", "user_id", "api_key_id", "model"),
        "code_interpreter_sessions": ("project_id",),
        "vector_stores": ("project_id",),
        "file_search_calls": ("project_id", "user_id", "api_key_id", "vector_store_id"),
    }[endpoint]
    out: dict[str, Any] = {name: None for name in spec}
    for name in group_by:
        if name == "batch":
            out[name] = False
        elif name == "service_tier":
            out[name] = "default"
        else:
            out[name] = group.get(name)
    return out


def usage(conn: sa.Connection, endpoint: str, q: UsageQuery, now: int) -> dict[str, Any]:
    """A UsageResponse page for `/v1/organization/usage/{endpoint}`. Raises Invalid for a bad page or limit."""
    spec = ENDPOINTS[endpoint]
    first, stop, width, has_more = _window(q, now, LIMITS[q.bucket_width])
    columns = [g for g in q.group_by if g not in ("user_id", "batch", "service_tier")]
    sums = _sums(conn, spec.kinds, q, first, stop, width, columns)
    results: dict[int, list[dict]] = {}
    for start, groups in sums.items():
        results[start] = [
            {"object": spec.object, **_amounts(endpoint, s), **_group_fields(endpoint, s.group, q.group_by)}
            for s in groups
        ]
    return _page(first, stop, width, has_more, results)


def _amounts(endpoint: str, s: records.Sums) -> dict[str, int]:
    if endpoint == "completions":
        uncached = s.input_tokens - s.cached_input_tokens
        return {
            "input_tokens": s.input_tokens,
            "input_cached_tokens": s.cached_input_tokens,
            "input_cache_write_tokens": 0,
            "input_uncached_tokens": uncached,
            "output_tokens": s.output_tokens,
            "input_text_tokens": uncached,
            "input_cached_text_tokens": s.cached_input_tokens,
            "output_text_tokens": s.output_tokens,
            "input_audio_tokens": 0,
            "input_cached_audio_tokens": 0,
            "output_audio_tokens": 0,
            "input_image_tokens": 0,
            "input_cached_image_tokens": 0,
            "output_image_tokens": 0,
            "num_model_requests": s.rows,
        }
    if endpoint == "embeddings":
        return {"input_tokens": s.input_tokens, "num_model_requests": s.quantity}
    if endpoint == "code_interpreter_sessions":
        return {"num_sessions": s.quantity}
    if endpoint == "vector_stores":
        return {"usage_bytes": s.quantity}
    return {"num_requests": s.quantity}


# -- costs ------------------------------------------------------------------------------------------------------------


@dataclass
class _Item:
    amount: float = 0.0
    quantity: float = 0.0
    unit: str | None = None
    unpriced: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class LineItem:
    """One priced line of the costs in one bucket and group: `kind` is "input", "cached_input", "output",
    "embeddings" (tokens) or a tool (code_interpreter_session, file_search_call, vector_store_gb_day)."""

    start: int  # the bucket's start (Unix seconds)
    group: dict[str, Any]  # usage_records column -> value, per the `keys` asked for
    name: str  # OpenAI's line item: "<model>, input", "file search tool calls", ...
    kind: str
    amount: float  # USD
    quantity: float
    unit: str  # tokens, sessions, calls, gigabyte_days
    unpriced: str | None  # the model, when it has no price (counted as 0)


TOKEN_KINDS = ("input", "cached_input", "output", "embeddings")


def line_items(
    conn: sa.Connection, q: UsageQuery, first: int, stop: int, width: int, prices: Prices, keys: list[str]
) -> Iterator[LineItem]:
    """The priced line items of the usage rows in [first, stop), per bucket of `width` seconds and per value of
    the usage_records columns `keys` (project_id, api_key_id, assistant_id, thread_id, model): the figures of
    /v1/organization/costs, and of the `threadline usage` report."""
    cols = list(dict.fromkeys([*keys, "model"]))
    for start, groups in _sums(conn, ("completion",), q, first, stop, width, cols).items():
        for s in groups:
            model = s.group["model"]
            price = prices.model(model)
            flag = model if price.source is None else None
            uncached = s.input_tokens - s.cached_input_tokens
            group = {k: s.group[k] for k in keys}
            amount = uncached * price.input_per_mtok / 1e6
            yield LineItem(start, group, f"{model}, input", "input", amount, uncached, "tokens", flag)
            if s.cached_input_tokens:
                amount = s.cached_input_tokens * price.cached_input_per_mtok / 1e6
                cached = s.cached_input_tokens
                yield LineItem(start, group, f"{model}, cached input", "cached_input", amount, cached, "tokens", flag)
            amount = s.output_tokens * price.output_per_mtok / 1e6
            yield LineItem(start, group, f"{model}, output", "output", amount, s.output_tokens, "tokens", flag)
    for start, groups in _sums(conn, ("embedding",), q, first, stop, width, cols).items():
        for s in groups:
            model = s.group["model"]
            price = prices.model(model)
            flag = model if price.source is None else None
            amount = s.input_tokens * price.input_per_mtok / 1e6
            group = {k: s.group[k] for k in keys}
            yield LineItem(start, group, f"{model}, embeddings", "embeddings", amount, s.input_tokens, "tokens", flag)
    for kind, name, tool, scale, unit in TOOL_ITEMS:
        for start, groups in _sums(conn, (kind,), q, first, stop, width, list(keys)).items():
            for s in groups:
                quantity = s.quantity * scale
                group = {k: s.group.get(k) for k in keys}
                yield LineItem(start, group, name, tool, quantity * prices.tool(tool), quantity, unit, None)


# (usage record kind, line item, tool price, quantity scale, unit)
TOOL_ITEMS = (
    ("code_interpreter_session", "code interpreter sessions", "code_interpreter_session", 1.0, "sessions"),
    ("file_search_call", "file search tool calls", "file_search_call", 1.0, "calls"),
    ("vector_store_bytes", "vector store storage", "vector_store_gb_day", 1e-9, "gigabyte_days"),
)


def costs(conn: sa.Connection, q: UsageQuery, now: int, prices: Prices) -> dict[str, Any]:
    """A UsageResponse page of `organization.costs.result` objects (USD) for `/v1/organization/costs`."""
    first, stop, width, has_more = _window(q, now, COSTS_LIMITS)
    by_line = "line_item" in q.group_by
    totals: dict[int, dict[tuple, _Item]] = {}
    keys = [g for g in q.group_by if g in ("project_id", "api_key_id")]
    for line in line_items(conn, q, first, stop, width, prices, keys):
        key = (line.group.get("project_id"), line.group.get("api_key_id"), line.name if by_line else None)
        entry = totals.setdefault(line.start, {}).setdefault(key, _Item(unit=line.unit))
        entry.amount += line.amount
        entry.quantity += line.quantity
        if line.unpriced:
            entry.unpriced.add(line.unpriced)
    results: dict[int, list[dict]] = {}
    for start, entries in totals.items():
        out = results.setdefault(start, [])
        for (project_id, api_key_id, item), entry in entries.items():
            result: dict[str, Any] = {
                "object": "organization.costs.result",
                "amount": {"value": round(entry.amount, 10), "currency": "usd"},
                "line_item": item,
                "project_id": project_id if "project_id" in q.group_by else None,
                "api_key_id": api_key_id if "api_key_id" in q.group_by else None,
                "quantity": round(entry.quantity, 10) if by_line else None,
                "quantity_unit": entry.unit if by_line else None,
            }
            if entry.unpriced:  # extension: these models have no price (file or genai-prices): counted as 0
                result["unpriced_models"] = sorted(entry.unpriced)
            out.append(result)
    return _page(first, stop, width, has_more, results)


# -- per run: the hidden cost ------------------------------------------------------------------------------------


def run_usage(conn: sa.Connection, run_id: str, prices: Prices) -> dict[str, Any]:
    """Each turn of a run with its tokens, latency and what its prompt was made of (estimated tokens per part, as
    the context source counted them), priced at the model's input price; its tool use priced too. Raises NotFound
    for a run with no usage."""
    rows = records.execution_rows(conn, "run_id", run_id, USAGE_KINDS)
    if not any(r["kind"] == "completion" for r in rows):
        raise NotFound("run", run_id)
    first = next(r for r in rows if r["kind"] == "completion")
    return {
        "object": "organization.usage.run",
        "run_id": run_id,
        "thread_id": first["thread_id"],
        "assistant_id": first["assistant_id"],
        "project_id": first["project_id"],
        "api_key_id": first["api_key_id"],
        **_breakdown(rows, PROMPT_PARTS, prices),
    }


def response_usage(conn: sa.Connection, response_id: str, prices: Prices) -> dict[str, Any]:
    """Each model call of a response (or of a compaction) with its tokens, latency and what its prompt was made
    of, priced; its file_search calls and code-interpreter container sessions priced too (the shape of
    run_usage). Raises NotFound for a response with no usage."""
    rows = records.execution_rows(conn, "response_id", response_id, USAGE_KINDS)
    if not any(r["kind"] == "completion" for r in rows):
        raise NotFound("response", response_id)
    first = next(r for r in rows if r["kind"] == "completion")
    thread_id = first["thread_id"]
    return {
        "object": "organization.usage.response",
        "response_id": response_id,
        "conversation_id": conversation_id(thread_id) if thread_id else None,
        "assistant_id": first["assistant_id"],
        "project_id": first["project_id"],
        "api_key_id": first["api_key_id"],
        **_breakdown(rows, RESPONSE_PROMPT_PARTS, prices),
    }


USAGE_KINDS = ("completion", "file_search_call", "code_interpreter_session")


def _breakdown(rows: list[dict[str, Any]], part_names: tuple[str, ...], prices: Prices) -> dict[str, Any]:
    """The turns (completion rows), their totals, the tool use and the cost of an execution's usage rows."""
    turns = []
    total_parts = dict.fromkeys(part_names, 0)
    total_cost = {**dict.fromkeys(part_names, 0.0), "input": 0.0, "output": 0.0}
    totals = {"input_tokens": 0, "input_cached_tokens": 0, "output_tokens": 0}
    tools = {"file_search_calls": 0, "code_interpreter_sessions": 0}
    unpriced: set[str] = set()
    for row in rows:
        if row["kind"] == "file_search_call":
            tools["file_search_calls"] += row["quantity"]
            continue
        if row["kind"] == "code_interpreter_session":
            tools["code_interpreter_sessions"] += row["quantity"]
            continue
        price = prices.model(row["model"])
        if price.source is None and row["model"]:
            unpriced.add(row["model"])
        parts = {p: int((row["data"].get("prompt") or {}).get(p, 0)) for p in part_names}
        uncached = row["input_tokens"] - row["cached_input_tokens"]
        cost = {p: parts[p] * price.input_per_mtok / 1e6 for p in part_names}
        cost["input"] = (
            uncached * price.input_per_mtok + row["cached_input_tokens"] * price.cached_input_per_mtok
        ) / 1e6
        cost["output"] = row["output_tokens"] * price.output_per_mtok / 1e6
        for p in part_names:
            total_parts[p] += parts[p]
        for k, v in cost.items():
            total_cost[k] += v
        totals["input_tokens"] += row["input_tokens"]
        totals["input_cached_tokens"] += row["cached_input_tokens"]
        totals["output_tokens"] += row["output_tokens"]
        turns.append(
            {
                "created_at": row["created_at"],
                "model": row["model"],
                "provider": row["provider"],
                "input_tokens": row["input_tokens"],
                "input_cached_tokens": row["cached_input_tokens"],
                "output_tokens": row["output_tokens"],
                "latency_ms": row["latency_ms"],
                "estimated": bool(row["data"].get("estimated")),
                "prompt_tokens_by_source": parts,
                "cost": {k: round(v, 10) for k, v in cost.items()},
            }
        )
    tool_cost = {
        "file_search_calls": tools["file_search_calls"] * prices.tool("file_search_call"),
        "code_interpreter_sessions": tools["code_interpreter_sessions"] * prices.tool("code_interpreter_session"),
    }
    total = total_cost["input"] + total_cost["output"] + sum(tool_cost.values())
    return {
        "turns": turns,
        **totals,
        "prompt_tokens_by_source": total_parts,
        "tools": tools,
        "cost": {
            **{k: round(v, 10) for k, v in total_cost.items()},
            "tools": {k: round(v, 10) for k, v in tool_cost.items()},
            "total": round(total, 10),
            "currency": "usd",
        },
        "unpriced_models": sorted(unpriced),
    }


# -- the daily vector store snapshot -----------------------------------------------------------------------------


class VectorStoreSnapshots:
    """Keeps each vector store's size for the day (of the runtime's clock) up to date: called by the maintenance
    pass, at most every `interval_s`, it adds a row for a store not yet seen that day and raises it when the store
    has grown (store/usage.py). Every process may call it: the rows stay one per store and day."""

    def __init__(self, interval_s: float = 300.0) -> None:
        self.interval_s = interval_s
        self.last: float | None = None

    def maybe_take(self, store: Store, at: int) -> int:
        """Record the day's sizes unless that was done less than `interval_s` ago (and on the same day); returns
        how many rows were added or raised."""
        if (
            self.last is not None
            and at - self.last < self.interval_s
            and at // records.DAY_S == self.last // records.DAY_S
        ):
            return 0
        self.last = at
        with store.write() as conn:
            return records.snapshot_vector_stores(conn, at)
