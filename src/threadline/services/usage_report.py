"""The `threadline usage` report: spend (USD) and tokens per project, key, assistant, thread and/or model over a
period, read from the database. Amounts are the line items of /v1/organization/costs (services/usage.py), so the
report and the costs endpoint agree; rows are a readable table or CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ..store import usage as records
from .prices import Prices
from .usage import TOKEN_KINDS, UsageQuery, line_items

# --by name -> usage_records column
DIMENSIONS = {
    "project": "project_id",
    "api_key": "api_key_id",
    "assistant": "assistant_id",
    "thread": "thread_id",
    "model": "model",
}
COUNTS = (
    "model_requests",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "embedding_tokens",
    "file_search_calls",
    "code_interpreter_sessions",
    "vector_store_gb_days",
)
AMOUNTS = ("tokens_usd", "tools_usd", "total_usd")


@dataclass
class ReportRow:
    """One group's usage over the period: counts, and USD for tokens, for tools and in all."""

    group: dict[str, Any]  # usage_records column -> value (None: none, e.g. the assistant of a vector store)
    counts: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    tokens_usd: float = 0.0
    tools_usd: float = 0.0
    unpriced: set[str] = field(default_factory=set)

    @property
    def total_usd(self) -> float:
        return self.tokens_usd + self.tools_usd


def report(conn: sa.Connection, start: int, end: int, by: list[str], prices: Prices) -> list[ReportRow]:
    """The usage in [start, end) (Unix seconds) grouped by the `by` dimensions (keys of DIMENSIONS), most
    expensive first. Every usage row counts: model calls of runs, responses and compactions, embeddings, tools."""
    cols = [DIMENSIONS[b] for b in dict.fromkeys(by)]
    width = end - start
    rows: dict[tuple, ReportRow] = {}

    def row(group: dict[str, Any]) -> ReportRow:
        key = tuple(group.get(c) for c in cols)
        return rows.setdefault(key, ReportRow({c: group.get(c) for c in cols}))

    def sums(kind: str) -> list[records.Sums]:
        return records.sums(conn, (kind,), start, end, width, tuple(cols), {}).get(start, [])

    for s in sums("completion"):
        r = row(s.group)
        r.counts["model_requests"] += s.rows
        r.counts["input_tokens"] += s.input_tokens
        r.counts["cached_input_tokens"] += s.cached_input_tokens
        r.counts["output_tokens"] += s.output_tokens
    for s in sums("embedding"):
        row(s.group).counts["embedding_tokens"] += s.input_tokens
    for s in sums("file_search_call"):
        row(s.group).counts["file_search_calls"] += s.quantity
    for s in sums("code_interpreter_session"):
        row(s.group).counts["code_interpreter_sessions"] += s.quantity
    for s in sums("vector_store_bytes"):
        row(s.group).counts["vector_store_gb_days"] += s.quantity / 1e9
    for line in line_items(conn, UsageQuery(start_time=start), start, end, width, prices, cols):
        r = row(line.group)
        if line.kind in TOKEN_KINDS:
            r.tokens_usd += line.amount
        else:
            r.tools_usd += line.amount
        if line.unpriced:
            r.unpriced.add(line.unpriced)
    return sorted(rows.values(), key=lambda r: (-r.total_usd, [str(r.group[c] or "") for c in cols]))


def _count(name: str, value: float) -> str:
    return f"{value:.6f}" if name == "vector_store_gb_days" else str(int(value))


def to_csv(rows: list[ReportRow], by: list[str]) -> str:
    """The rows as CSV: one column per dimension (empty for none), the counts, the USD amounts (full precision)
    and the unpriced models (priced 0; `;`-separated)."""
    cols = [DIMENSIONS[b] for b in dict.fromkeys(by)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*cols, *COUNTS, *AMOUNTS, "unpriced_models"])
    for r in rows:
        amounts = [round(v, 10) for v in (r.tokens_usd, r.tools_usd, r.total_usd)]
        counts = [_count(name, r.counts[name]) for name in COUNTS]
        writer.writerow([*(r.group[c] or "" for c in cols), *counts, *amounts, ";".join(sorted(r.unpriced))])
    return out.getvalue()


TABLE_COUNTS = (
    ("requests", "model_requests"),
    ("input", "input_tokens"),
    ("cached", "cached_input_tokens"),
    ("output", "output_tokens"),
    ("embedding", "embedding_tokens"),
)


def to_table(rows: list[ReportRow], by: list[str], period: str) -> str:
    """The rows as a text table (tokens, then USD with 6 decimals for tokens, tools and in all), with a total line;
    models without a price are listed below it."""
    cols = list(dict.fromkeys(by))
    header = [*cols, *(label for label, _ in TABLE_COUNTS), "tokens USD", "tools USD", "total USD"]
    body = []
    for r in rows:
        counts = [f"{int(r.counts[name]):,}" for _, name in TABLE_COUNTS]
        amounts = [f"{v:.6f}" for v in (r.tokens_usd, r.tools_usd, r.total_usd)]
        body.append([*(str(r.group[DIMENSIONS[c]] or "-") for c in cols), *counts, *amounts])
    totals = [f"{int(sum(r.counts[name] for r in rows)):,}" for _, name in TABLE_COUNTS]
    sums = [sum(r.tokens_usd for r in rows), sum(r.tools_usd for r in rows), sum(r.total_usd for r in rows)]
    total = ["TOTAL", *([""] * (len(cols) - 1)), *totals, *(f"{v:.6f}" for v in sums)]
    widths = [max(len(line[i]) for line in [header, *body, total]) for i in range(len(header))]

    def fmt(line: list[str]) -> str:
        cells = [c.ljust(w) if i < len(cols) else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    lines = [f"Usage {period}", "", fmt(header), rule, *(fmt(line) for line in body), rule, fmt(total)]
    unpriced = sorted({m for r in rows for m in r.unpriced})
    if unpriced:
        lines += ["", f"No price (counted as 0): {', '.join(unpriced)} (set them in THREADLINE_PRICES_FILE)"]
    return "\n".join(lines) + "\n"
