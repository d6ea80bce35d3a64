"""Spend for the console: usage records per day by model, assistant and project with their cost in USD, the threads
and runs that cost the most, and one run's cost per turn and per step.

Prices are applied exactly as `/v1/organization/costs` applies them (services/usage.py: `token_cost` for tokens,
`tool_cost` for code-interpreter sessions, file_search calls and vector storage), so the console's daily totals
equal that endpoint's for the same project and days.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..store import console as queries
from ..store import runs as run_store
from .errors import NotFound
from .prices import Prices
from .usage import TOOL_ITEMS, run_usage, token_cost, tool_cost

DAY_S = 86_400
DIGITS = 10  # as /v1/organization/costs rounds its amounts


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

    Returns `buckets` (one per day, kind, project, assistant and model: tokens, `quantity` and `cost` in USD),
    `top_threads` and `top_runs` (the TOP_N that cost the most, then used the most tokens) and `unpriced_models`
    (models with no price in the price file or genai-prices, counted at 0 as /costs does).
    """
    buckets = []
    unpriced: set[str] = set()
    for row in queries.usage_groups(conn, since, until, DAY_S, projects):
        kind = row.kind
        input_tokens, cached, output = int(row.input_tokens or 0), int(row.cached_input_tokens or 0), 0
        quantity = int(row.quantity or 0)
        if kind in ("completion", "embedding"):
            price = prices.model(row.model)
            if price.source is None and row.model:
                unpriced.add(row.model)
            if kind == "completion":
                output = int(row.output_tokens or 0)
            else:
                cached = 0
            cost = token_cost(price, input_tokens, cached, output)
            line_item = row.model or "(unknown model)"
            if kind == "embedding":
                line_item += ", embeddings"
            unit = "tokens"
        elif kind in TOOL_ITEMS:
            line_item, _, _, unit = TOOL_ITEMS[kind]
            cost = tool_cost(prices, kind, quantity)
            input_tokens = cached = 0
        else:  # a kind this version does not price
            continue
        buckets.append(
            {
                "day": int(row.day),
                "kind": kind,
                "line_item": line_item,
                "model": row.model,
                "assistant_id": row.assistant_id,
                "project_id": row.project_id,
                "requests": int(row.requests),
                **_tokens(input_tokens, cached, output),
                "quantity": quantity,
                "quantity_unit": unit,
                "cost": round(cost, DIGITS),
            }
        )
    models = queries.window_models(conn, since, until, projects)
    model_prices = {}
    for model in models:
        p = prices.model(model)
        model_prices[model] = (p.input_per_mtok, p.cached_input_per_mtok, p.output_per_mtok)
    tool_prices = {kind: tool_cost(prices, kind, 1) for kind in ("code_interpreter_session", "file_search_call")}
    top_threads = [
        {
            "thread_id": row.id,
            "assistant_id": row.assistant_id,
            "requests": int(row.requests or 0),
            "usage": _tokens(
                int(row.input_tokens or 0), int(row.cached_input_tokens or 0), int(row.output_tokens or 0)
            ),
            "cost": round(float(row.cost or 0), DIGITS),
        }
        for row in queries.costliest(conn, "thread_id", since, until, projects, model_prices, tool_prices)
    ]
    top = queries.costliest(conn, "run_id", since, until, projects, model_prices, tool_prices)
    facts = queries.run_facts(conn, [row.id for row in top])
    top_runs = []
    for row in top:
        found = facts.get(row.id, {})
        top_runs.append(
            {
                "id": row.id,
                "thread_id": row.thread_id,
                "assistant_id": row.assistant_id,
                "model": found.get("model") or row.model,
                "status": found.get("status"),  # None: the run (or its thread) was deleted since
                "created_at": found.get("created_at"),
                "requests": int(row.requests or 0),
                "usage": _row_tokens(row),
                "cost": round(float(row.cost or 0), DIGITS),
            }
        )
    return {
        "buckets": buckets,
        "top_threads": top_threads,
        "top_runs": top_runs,
        "unpriced_models": sorted(unpriced),
        "total_cost": round(sum(b["cost"] for b in buckets), DIGITS),
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
        cost = token_cost(price, int(u.get("prompt_tokens") or 0), 0, int(u.get("completion_tokens") or 0))
        steps[step["id"]] = {"usage": u, "cost": round(cost, DIGITS)}
    tools = []
    for kind, quantity in sorted(queries.run_tool_usage(conn, run["id"]).items()):
        if kind in TOOL_ITEMS:
            line_item, _, _, unit = TOOL_ITEMS[kind]
            cost = round(tool_cost(prices, kind, quantity), DIGITS)
            tools.append(
                {"kind": kind, "line_item": line_item, "quantity": quantity, "quantity_unit": unit, "cost": cost}
            )
    model_cost = turns["cost"]["total"] if turns else 0.0
    tool_total = sum(t["cost"] for t in tools)
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
            "tools": round(tool_total, DIGITS),
            "total": round(model_cost + tool_total, DIGITS),
            "currency": "usd",
        },
    }
