"""Spend for the console: usage records per day by model, assistant and project with their cost in USD, the threads,
runs and responses that cost the most, and one run's cost per model call and per step.

The daily figures are `/v1/organization/costs`' own line items (services/usage.py `line_items`, the same prices and
the same arithmetic) regrouped by day, project, assistant and model, so the console's totals equal that endpoint's
for the same project and days. Runs and Assistants-API traffic, and Responses-API traffic, are both included.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..store import console as queries
from ..store import runs as run_store
from .errors import NotFound
from .prices import Prices
from .usage import TOOL_ITEMS, UsageQuery, line_items, run_usage

DAY_S = 86_400
DIGITS = 10  # as /v1/organization/costs rounds its amounts
# LineItem.kind -> the usage record kind it prices
_RECORD_KIND = {"input": "completion", "cached_input": "completion", "output": "completion", "embeddings": "embedding"}
_RECORD_KIND.update({tool: kind for kind, _, tool, _, _ in TOOL_ITEMS})


def _tokens(input_tokens: int, cached: int, output: int) -> dict[str, int]:
    return {
        "prompt_tokens": input_tokens,
        "cached_tokens": cached,
        "completion_tokens": output,
        "total_tokens": input_tokens + output,
    }


def _row_tokens(row: sa.Row) -> dict[str, int]:
    return _tokens(int(row.input_tokens or 0), int(row.cached_input_tokens or 0), int(row.output_tokens or 0))


def usage(conn: sa.Connection, since: int, until: int, projects: list[str] | None, prices: Prices) -> dict[str, Any]:
    """Usage and spend of the `projects` (None: every project) in [since, until) (Unix seconds, whole UTC days).

    Returns `buckets` (one per day, usage kind, project, assistant and model: tokens, `quantity` of tool use and
    `cost` in USD), `total_cost`, `top_threads` and `top_runs` (the TOP_N that cost the most, then used the most
    tokens; `top_runs` holds responses too, `object` "response") and `unpriced_models` (models with no price in the
    price file or genai-prices, counted at 0 as /costs does).
    """
    q = UsageQuery(start_time=since, end_time=until, filters={"project_id": projects} if projects is not None else {})
    found: dict[tuple, dict[str, Any]] = {}
    unpriced: set[str] = set()
    for item in line_items(conn, q, since, until, DAY_S, prices, ["project_id", "assistant_id", "model"]):
        kind = _RECORD_KIND[item.kind]
        model = item.group.get("model")
        key = (item.start, kind, item.group["project_id"], item.group.get("assistant_id"), model)
        bucket = found.get(key)
        if bucket is None:
            label = item.name if kind != "completion" else model or "(unknown model)"
            bucket = found[key] = {
                "day": item.start,
                "kind": kind,
                "line_item": label,
                "model": model,
                "assistant_id": key[3],
                "project_id": key[2],
                "prompt_tokens": 0,
                "cached_tokens": 0,
                "completion_tokens": 0,
                "quantity": 0.0,
                "quantity_unit": item.unit,
                "cost": 0.0,
            }
        if item.kind in ("input", "cached_input", "embeddings"):
            bucket["prompt_tokens"] += int(item.quantity)
            if item.kind == "cached_input":
                bucket["cached_tokens"] += int(item.quantity)
        elif item.kind == "output":
            bucket["completion_tokens"] += int(item.quantity)
        bucket["quantity"] += item.quantity
        bucket["cost"] += item.amount
        if item.unpriced:
            unpriced.add(item.unpriced)
    buckets = sorted(found.values(), key=lambda b: (b["day"], b["kind"], b["project_id"], b["line_item"]))
    for b in buckets:
        b["total_tokens"] = b["prompt_tokens"] + b["completion_tokens"]
        b["quantity"] = round(b["quantity"], DIGITS)
        b["cost"] = round(b["cost"], DIGITS)
    model_prices = {}
    for model in queries.window_models(conn, since, until, projects):
        p = prices.model(model)
        model_prices[model] = (p.input_per_mtok, p.cached_input_per_mtok, p.output_per_mtok)
    tool_prices = {
        kind: scale * prices.tool(tool) for kind, _, tool, scale, _ in TOOL_ITEMS if kind != "vector_store_bytes"
    }
    top_threads = [
        {
            "thread_id": row.id,
            "project_id": row.project_id,
            "assistant_id": row.assistant_id,
            "requests": int(row.requests or 0),
            "usage": _row_tokens(row),
            "cost": round(float(row.cost or 0), DIGITS),
        }
        for row in queries.costliest(conn, "thread_id", since, until, projects, model_prices, tool_prices)
    ]
    top = queries.costliest(conn, "execution", since, until, projects, model_prices, tool_prices)
    facts = queries.execution_facts(conn, [row.id for row in top])
    top_runs = []
    for row in top:
        known = facts.get(row.id, {})
        top_runs.append(
            {
                "id": row.id,
                "object": "response" if row.id.startswith("resp_") else "thread.run",
                "thread_id": row.thread_id,
                "project_id": row.project_id,
                "assistant_id": row.assistant_id,
                "model": known.get("model") or row.model,
                "status": known.get("status"),  # None: deleted since
                "created_at": known.get("created_at"),
                "requests": int(row.requests or 0),
                "usage": _row_tokens(row),
                "cost": round(float(row.cost or 0), DIGITS),
            }
        )
    return {
        "buckets": buckets,
        "total_cost": round(sum(b["cost"] for b in buckets), DIGITS),
        "top_threads": top_threads,
        "top_runs": top_runs,
        "unpriced_models": sorted(unpriced),
    }


def run_cost(conn: sa.Connection, run: dict[str, Any], prices: Prices) -> dict[str, Any]:
    """What `run` (a run object) cost: its turns as `/v1/organization/usage/runs/{id}` reports them (tokens, what
    each prompt was made of, USD), its tool use, and each step's `usage` priced at the run's model.

    `steps` maps a step id to {usage, cost}; `cost.total` is the model calls plus the tools (USD)."""
    try:
        turns = run_usage(conn, run["id"], prices)
    except NotFound:  # no model call recorded (e.g. a run that failed before calling the model)
        turns = None
    price = prices.model(run.get("model"))
    steps = {}
    for step in run_store.steps(conn, run["id"]):
        u = step.get("usage")
        if not u:
            steps[step["id"]] = {"usage": None, "cost": None}
            continue
        cost = (
            int(u.get("prompt_tokens") or 0) * price.input_per_mtok / 1e6
            + int(u.get("completion_tokens") or 0) * price.output_per_mtok / 1e6
        )  # as /costs prices a run's input and output tokens
        steps[step["id"]] = {"usage": u, "cost": round(cost, DIGITS)}
    tools = []
    if turns:
        names = {"file_search_calls": "file_search_call", "code_interpreter_sessions": "code_interpreter_session"}
        for name, quantity in turns["tools"].items():
            if quantity:
                kind = names[name]
                line_item, unit = next((item, unit) for k, item, _, _, unit in TOOL_ITEMS if k == kind)
                cost = turns["cost"]["tools"][name]
                tools.append(
                    {"kind": kind, "line_item": line_item, "quantity": quantity, "quantity_unit": unit, "cost": cost}
                )
    model_cost = round(turns["cost"]["input"] + turns["cost"]["output"], DIGITS) if turns else 0.0
    tool_total = round(sum(t["cost"] for t in tools), DIGITS)
    return {
        "object": "console.run_cost",
        "run_id": run["id"],
        "model": run.get("model"),
        "priced": price.source is not None,
        "price": {
            "input_per_mtok": price.input_per_mtok,
            "cached_input_per_mtok": price.cached_input_per_mtok,
            "output_per_mtok": price.output_per_mtok,
            "source": price.source,
        },
        "turns": turns["turns"] if turns else [],
        "prompt_tokens_by_source": turns["prompt_tokens_by_source"] if turns else None,
        "tools": tools,
        "steps": steps,
        "cost": {
            "models": model_cost,
            "tools": tool_total,
            "total": turns["cost"]["total"] if turns else 0.0,
            "currency": "usd",
        },
    }
