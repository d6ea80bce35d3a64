"""Limits: rate limits, hard spend limits, spend alerts and their firings, the rate limits' per-minute counters
(schema tables of migration 0011), and the version counter every change bumps.

A change of limits or alerts calls `changed(conn)` in its transaction: it bumps `limits_version` (read by the
SQLite processes' caches) and, on PostgreSQL, NOTIFYs `threadline_limits` (heard by every process's listener).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from . import schema
from .sql import dumps, loads

CHANNEL = "threadline_limits"
ORGANIZATION = "organization"  # the scope of the organization's spend limit and alerts


def changed(conn: sa.Connection) -> None:
    """Announce a change of limits or alerts to every process (at commit)."""
    t = schema.limits_version
    conn.execute(t.update().where(t.c.id == 1).values(version=t.c.version + 1))
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text(f"NOTIFY {CHANNEL}"))


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


# -- the cached view ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    """Every limit and alert: rate limits by (project, model) (fields set, 0 = none), spend limits in cents by
    scope, alerts by scope (their stored objects)."""

    rate_limits: dict[tuple[str, str], dict[str, int]]
    spend_limits: dict[str, int]
    alerts: dict[str, list[dict[str, Any]]]


def load(conn: sa.Connection) -> Loaded:
    """Read every limit and alert (a few rows: they are set by hand)."""
    rl, sl, sa_ = schema.rate_limits, schema.spend_limits, schema.spend_alerts
    rates = {(r.project_id, r.model): loads(r.data) for r in conn.execute(sa.select(rl))}
    spends = {r.scope: int(r.threshold_amount) for r in conn.execute(sa.select(sl.c.scope, sl.c.threshold_amount))}
    alerts: dict[str, list[dict[str, Any]]] = {}
    for r in conn.execute(sa.select(sa_.c.scope, sa_.c.data).order_by(sa_.c.seq)):
        alerts.setdefault(r.scope, []).append(loads(r.data))
    return Loaded(rates, spends, alerts)


# -- rate limits --------------------------------------------------------------------------------------------------


def rate_limits(conn: sa.Connection, project_id: str) -> dict[str, dict[str, int]]:
    """The project's stored rate limits by model."""
    t = schema.rate_limits
    rows = conn.execute(sa.select(t.c.model, t.c.data).where(t.c.project_id == project_id))
    return {r.model: loads(r.data) for r in rows}


def set_rate_limit(conn: sa.Connection, project_id: str, model: str, fields: dict[str, int], at: int) -> None:
    """Store the project's limits for `model` (fields all 0: none, the row goes)."""
    t = schema.rate_limits
    conn.execute(t.delete().where(t.c.project_id == project_id, t.c.model == model))
    if any(fields.values()):
        conn.execute(t.insert().values(project_id=project_id, model=model, data=dumps(fields), updated_at=at))
    changed(conn)


# -- spend limits -------------------------------------------------------------------------------------------------


def spend_limit(conn: sa.Connection, scope: str) -> dict[str, Any] | None:
    """{threshold_amount, currency, interval} of `scope`'s hard spend limit, or None."""
    t = schema.spend_limits
    row = conn.execute(sa.select(t.c.threshold_amount, t.c.currency, t.c.interval).where(t.c.scope == scope)).first()
    return None if row is None else {"threshold_amount": int(row[0]), "currency": row[1], "interval": row[2]}


def put_spend_limit(conn: sa.Connection, scope: str, threshold: int, currency: str, interval: str, at: int) -> None:
    """Create or replace `scope`'s hard spend limit (cents)."""
    t = schema.spend_limits
    conn.execute(t.delete().where(t.c.scope == scope))
    conn.execute(
        t.insert().values(scope=scope, threshold_amount=threshold, currency=currency, interval=interval, updated_at=at)
    )
    changed(conn)


def delete_spend_limit(conn: sa.Connection, scope: str) -> bool:
    """Remove `scope`'s hard spend limit; False when there was none."""
    t = schema.spend_limits
    gone = conn.execute(t.delete().where(t.c.scope == scope)).rowcount > 0
    if gone:
        changed(conn)
    return gone


# -- spend alerts -------------------------------------------------------------------------------------------------


def insert_alert(conn: sa.Connection, scope: str, alert: dict[str, Any], at: int) -> None:
    conn.execute(schema.spend_alerts.insert().values(id=alert["id"], scope=scope, created_at=at, data=dumps(alert)))
    changed(conn)


def get_alert(conn: sa.Connection, scope: str, alert_id: str) -> dict[str, Any] | None:
    t = schema.spend_alerts
    row = conn.execute(sa.select(t.c.data).where(t.c.id == alert_id, t.c.scope == scope)).first()
    return None if row is None else loads(row[0])


def update_alert(conn: sa.Connection, scope: str, alert: dict[str, Any]) -> bool:
    t = schema.spend_alerts
    done = conn.execute(t.update().where(t.c.id == alert["id"], t.c.scope == scope).values(data=dumps(alert)))
    if done.rowcount:
        changed(conn)
    return done.rowcount > 0


def delete_alert(conn: sa.Connection, scope: str, alert_id: str) -> bool:
    t = schema.spend_alerts
    gone = conn.execute(t.delete().where(t.c.id == alert_id, t.c.scope == scope)).rowcount > 0
    if gone:
        conn.execute(schema.spend_alert_firings.delete().where(schema.spend_alert_firings.c.alert_id == alert_id))
        changed(conn)
    return gone


def list_alerts(
    conn: sa.Connection, scope: str, *, limit: int, order: str, after: str | None, before: str | None
) -> tuple[list[dict[str, Any]], bool]:
    """A page of `scope`'s alerts in creation order (`order` asc|desc) after / before the alert ids given (an
    unknown cursor: an empty page). Returns (alerts, has_more)."""
    t = schema.spend_alerts
    query = sa.select(t.c.data).where(t.c.scope == scope)
    desc = order == "desc"
    for cursor, later in ((after, not desc), (before, desc)):
        if cursor is None:
            continue
        seq = conn.execute(sa.select(t.c.seq).where(t.c.id == cursor, t.c.scope == scope)).scalar()
        if seq is None:
            return [], False
        query = query.where(t.c.seq > seq if later else t.c.seq < seq)
    backwards = before is not None and after is None  # the page just before the cursor, shown in `order`
    ascending = desc if backwards else not desc
    query = query.order_by(t.c.seq.asc() if ascending else t.c.seq.desc()).limit(limit + 1)
    rows = [loads(r[0]) for r in conn.execute(query)]
    has_more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    return rows, has_more


def record_firing(conn: sa.Connection, alert_id: str, period: str, at: int, spend_cents: float) -> bool:
    """Record that `alert_id` fired in `period`; False when it had fired there already (by any process)."""
    t = schema.spend_alert_firings
    stmt = _insert(conn, t).values(alert_id=alert_id, period=period, fired_at=at, spend_amount=spend_cents)
    # RETURNING says whether the row went in on both backends (the row count did not, on PostgreSQL)
    return conn.execute(stmt.on_conflict_do_nothing().returning(t.c.alert_id)).first() is not None


def firings(conn: sa.Connection, alert_id: str) -> list[dict[str, Any]]:
    """When `alert_id` fired, oldest first: [{period, fired_at, spend_amount}]."""
    t = schema.spend_alert_firings
    rows = conn.execute(sa.select(t.c.period, t.c.fired_at, t.c.spend_amount).where(t.c.alert_id == alert_id))
    return [{"period": r[0], "fired_at": r[1], "spend_amount": r[2]} for r in sorted(rows, key=lambda r: r[1])]


# -- rate limit counters ------------------------------------------------------------------------------------------


def counts(conn: sa.Connection, project_id: str, model: str, minute: int) -> tuple[int, int, int, int]:
    """(requests, tokens) of the minute before `minute`, then of `minute` itself."""
    t = schema.rate_limit_counts
    rows = conn.execute(
        sa.select(t.c.minute, t.c.requests, t.c.tokens).where(
            t.c.project_id == project_id, t.c.model == model, t.c.minute.in_((minute - 60, minute))
        )
    )
    found = {int(r[0]): (int(r[1]), int(r[2])) for r in rows}
    prev, cur = found.get(minute - 60, (0, 0)), found.get(minute, (0, 0))
    return prev[0], prev[1], cur[0], cur[1]


def add_counts(conn: sa.Connection, project_id: str, model: str, minute: int, requests: int, tokens: int) -> None:
    """Add to the counters of `minute` (an upsert, atomic across processes); older minutes' rows go."""
    t = schema.rate_limit_counts
    stmt = _insert(conn, t).values(project_id=project_id, model=model, minute=minute, requests=requests, tokens=tokens)
    excluded = stmt.excluded
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[t.c.project_id, t.c.model, t.c.minute],
            set_={"requests": t.c.requests + excluded.requests, "tokens": t.c.tokens + excluded.tokens},
        )
    )
    conn.execute(t.delete().where(t.c.project_id == project_id, t.c.model == model, t.c.minute < minute - 60))


# -- spend --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpendRow:
    kind: str
    model: str | None
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    quantity: int


def spend_rows(conn: sa.Connection, project_id: str | None, start: int, end: int) -> list[SpendRow]:
    """Usage sums per kind and model with start <= created_at < end, of one project (None: every project)."""
    t = schema.usage_records
    query = sa.select(
        t.c.kind,
        t.c.model,
        sa.func.coalesce(sa.func.sum(t.c.input_tokens), 0),
        sa.func.coalesce(sa.func.sum(t.c.cached_input_tokens), 0),
        sa.func.coalesce(sa.func.sum(t.c.output_tokens), 0),
        sa.func.coalesce(sa.func.sum(t.c.quantity), 0),
    ).where(t.c.created_at >= start, t.c.created_at < end)
    if project_id is not None:
        query = query.where(t.c.project_id == project_id)
    rows = conn.execute(query.group_by(t.c.kind, t.c.model))
    return [SpendRow(r[0], r[1], int(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in rows]
