"""Limits: per-project, per-model rate limits, hard spend limits (organization and projects) and spend alerts,
enforced before every model call (docs/projects-and-costs.md#limits-and-alerts).

**The cache.** Limits are few and set by hand, so every process keeps all of them in memory and reloads them only
after a change: on PostgreSQL a change NOTIFYs `threadline_limits` (heard on the process's LISTEN connection; while
that connection is down every check reloads), on SQLite it bumps the one-row `limits_version`, read per check on a
connection kept for it (one read of one row: 30-45 µs measured on a loaded 2-core box). A model call of a
project with no limit (its own or the organization's) costs no query on PostgreSQL and that version read on
SQLite.

**Rate limits** count model calls (one per turn of a run or response) and tokens per project and model in
`rate_limit_counts`, one row per minute, incremented with an atomic upsert in the transaction that admits the call,
so every process sharing the database counts the same calls. A call's tokens are counted as the prompt's estimate
when it is admitted and corrected to the provider's input + output count when it ends. The window slides: the
previous minute's count weighs by the part of it still inside the last 60 s (Cloudflare's estimate; exact when the
rate is even, off by at most the previous minute's unevenness otherwise). `0` means "no limit" in every field.

**Spend** is what the current calendar month (UTC, on the runtime's clock) of usage rows costs at the server's
prices (services/prices.py), in cents, summed by one grouped query over the project's (or the organization's)
rows of the month, made only while a spend limit or alert applies. A model call is refused once spend has reached
the limit; the call that crosses it is not cut short (its cost is known only after it).

**Alerts** are evaluated when an execution ends: an alert whose threshold the period's spend has reached fires
once per period (a row in `spend_alert_firings`, whose key makes the first process to insert it the one that
reports it): a structured log line, the `threadline_spend_alerts` counter, and a JSON POST to
THREADLINE_SPEND_ALERT_WEBHOOK_URL when set, from a background task (short timeout, 3 attempts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import sqlalchemy as sa

from . import metrics
from .services.errors import RateLimited
from .services.prices import Prices
from .store import limits as records

if TYPE_CHECKING:
    from .clock import Clock
    from .store import Store
    from .store.listen import PgListener

log = logging.getLogger("threadline.limits")

WINDOW_S = 60
ORGANIZATION = records.ORGANIZATION
WEBHOOK_ATTEMPTS = 3


def period_of(at: int) -> tuple[str, int, int]:
    """The calendar month (UTC) holding `at`: (its label "YYYY-MM", start, end) in Unix seconds."""
    day = datetime.fromtimestamp(at, UTC)
    start = datetime(day.year, day.month, 1, tzinfo=UTC)
    end = datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=UTC)
    return f"{day.year:04d}-{day.month:02d}", int(start.timestamp()), int(end.timestamp())


def spend_cents(rows: list[records.SpendRow], prices: Prices) -> float:
    """What usage rows cost at `prices`, in cents (the line items of /v1/organization/costs), rounded to 10⁻⁶ cent
    so float noise never puts a spend a hair below a limit it has reached."""
    micro_usd = 0.0  # tokens x USD per million tokens
    for r in rows:
        price = prices.model(r.model)
        if r.kind == "completion":
            uncached = r.input_tokens - r.cached_input_tokens
            micro_usd += uncached * price.input_per_mtok + r.cached_input_tokens * price.cached_input_per_mtok
            micro_usd += r.output_tokens * price.output_per_mtok
        elif r.kind == "embedding":
            micro_usd += r.input_tokens * price.input_per_mtok
        elif r.kind == "code_interpreter_session":
            micro_usd += r.quantity * prices.tool("code_interpreter_session") * 1e6
        elif r.kind == "file_search_call":
            micro_usd += r.quantity * prices.tool("file_search_call") * 1e6
        elif r.kind == "vector_store_bytes":
            micro_usd += r.quantity * prices.tool("vector_store_gb_day") * 1e-3  # bytes / 10⁹ GB x 10⁶
    return round(micro_usd / 1e4, 6)


def _dollars(cents: float) -> str:
    return f"${cents / 100:,.2f}"


def _sliding(prev: int, cur: int, into: float) -> float:
    """The count of the last 60 s estimated from the previous and current minute's counts, `into` s into it."""
    return prev * (WINDOW_S - into) / WINDOW_S + cur


def _retry_after(prev: int, cur: int, into: float, requested: int, limit: int) -> int:
    """Whole seconds until `requested` more fits under `limit` (nothing else counted meanwhile)."""
    for wait in range(1, 2 * WINDOW_S + 1):
        at = into + wait
        used = _sliding(prev, cur, at) if at < WINDOW_S else _sliding(cur, 0, at - WINDOW_S) if at < 120 else 0
        if used + requested <= limit:
            return wait
    return 2 * WINDOW_S


@dataclass(frozen=True)
class Refusal:
    """Why a model call may not be made: `limit` is "spend", "requests" or "tokens"."""

    limit: str
    message: str


class _Over(Exception):
    """Rolls the admitting transaction back (the refused call is not counted)."""

    def __init__(self, refusal: Refusal) -> None:
        self.refusal = refusal


class Limits:
    """The server's limits and alerts, cached (see the module docstring); shared by requests and executions."""

    def __init__(
        self,
        store: Store,
        prices: Prices,
        clock: Clock,
        *,
        webhook_url: str | None = None,
        webhook_timeout_s: float = 5.0,
        listener: PgListener | None = None,
    ) -> None:
        self.store = store
        self.prices = prices
        self.clock = clock
        self.webhook_url = webhook_url
        self.webhook_timeout_s = webhook_timeout_s
        self._listener = listener
        self._generation = 0  # PostgreSQL: moves on every announcement and reconnection
        self._cached: tuple[int, records.Loaded] | None = None  # (generation or version, limits)
        self._lock = threading.Lock()
        self._raw: Any = None  # SQLite: the connection the version is read on
        self._tasks: set[asyncio.Task] = set()
        if listener is not None:
            listener.subscribe(records.CHANNEL, self._announced)
            listener.on_connect(lambda: self._announced(""))

    def _announced(self, _payload: str) -> None:
        self._generation += 1

    # -- the cache --------------------------------------------------------------------------------------------------

    def loaded(self) -> records.Loaded:
        """Every limit and alert, from the cache when nothing changed since it was read."""
        if self._listener is not None:
            if not self._listener.live:
                with self.store.read() as conn:
                    return records.load(conn)
            mark = self._generation
        else:
            mark = self._version()
        cached = self._cached
        if cached is not None and cached[0] == mark:
            return cached[1]
        with self.store.read() as conn:
            fresh = records.load(conn)
            if self._listener is None:
                mark = int(conn.execute(sa.select(records.schema.limits_version.c.version)).scalar() or 0)
        self._cached = (mark, fresh)
        return fresh

    def _version(self) -> int:
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._raw is None:
                        self._raw = self.store.engine.raw_connection()
                    cur = self._raw.cursor()
                    try:
                        cur.execute("SELECT version FROM limits_version WHERE id = 1")
                        row = cur.fetchone()
                    finally:
                        cur.close()
                    self._raw.rollback()  # no read transaction (and snapshot) held until the next check
                    return int(row[0]) if row else 0
                except Exception:
                    self._close_raw()
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    def _close_raw(self) -> None:
        if self._raw is not None:
            with contextlib.suppress(Exception):
                self._raw.invalidate()
            self._raw = None

    def close(self) -> None:
        with self._lock:
            if self._raw is not None:
                with contextlib.suppress(Exception):
                    self._raw.close()
                self._raw = None

    def applies(self, project_id: str, model: str) -> bool:
        """Whether a model call of `project_id` to `model` has anything to check (a rate limit for the model, a
        spend limit of the project or the organization)."""
        loaded = self.loaded()
        spend = loaded.spend_limits
        return (project_id, model) in loaded.rate_limits or project_id in spend or ORGANIZATION in spend

    # -- spend ---------------------------------------------------------------------------------------------------

    def spend(self, conn: sa.Connection, scope: str) -> float:
        """`scope`'s (a project id or ORGANIZATION) spend in the current period, in cents."""
        _, start, end = period_of(self.clock.now())
        rows = records.spend_rows(conn, None if scope == ORGANIZATION else scope, start, end)
        return spend_cents(rows, self.prices)

    # -- at request time ------------------------------------------------------------------------------------------

    def check_request(self, conn: sa.Connection, project_id: str, model: str) -> None:
        """Refuse a request that starts model calls (a run, a response) while `model`'s requests-per-minute limit of
        the project is reached: raises RateLimited (429). No query unless the project limits the model."""
        rate = self.loaded().rate_limits.get((project_id, model))
        limit = (rate or {}).get("max_requests_per_1_minute") or 0
        if not limit:
            return
        at = self.clock.time()
        minute = int(at // WINDOW_S * WINDOW_S)
        prev, _, cur, _ = records.counts(conn, project_id, model, minute)
        used = _sliding(prev, cur, at - minute)
        if used + 1 <= limit:
            return
        wait = _retry_after(prev, cur, at - minute, 1, limit)
        metrics.RATE_LIMITED.labels("requests").inc()
        raise RateLimited(
            _rate_message(model, project_id, "requests per min (RPM)", limit, math.ceil(used), 1, wait),
            limit_type="requests",
            limit=limit,
            remaining=max(0, limit - math.ceil(used)),
            retry_after_s=wait,
        )

    # -- before and after each model call ---------------------------------------------------------------------------

    def admit(self, project_id: str, model: str, prompt_tokens: int) -> Refusal | None:
        """Check a model call of `project_id` to `model` whose prompt is about `prompt_tokens` against the spend
        limits (project, organization) and the model's rate limits, and count it. Returns why it may not be made,
        or None (then it is counted). Blocking: call off the event loop."""
        loaded = self.loaded()
        rate = loaded.rate_limits.get((project_id, model))
        scopes = [s for s in (project_id, ORGANIZATION) if s in loaded.spend_limits]
        if not rate and not scopes:
            return None
        try:
            with self.store.write() if rate else self.store.read() as conn:
                for scope in scopes:
                    limit = loaded.spend_limits[scope]
                    spent = self.spend(conn, scope)
                    if spent >= limit:
                        raise _Over(Refusal("spend", _spend_message(scope, spent, limit)))
                if rate:
                    self._count(conn, project_id, model, rate, max(1, prompt_tokens))
        except _Over as over:
            metrics.RATE_LIMITED.labels(over.refusal.limit).inc()
            log.info(
                "model call refused: %s limit",
                over.refusal.limit,
                extra={"project_id": project_id, "model": model, "limit": over.refusal.limit},
            )
            return over.refusal
        return None

    def _count(self, conn: sa.Connection, project_id: str, model: str, rate: dict[str, int], tokens: int) -> None:
        at = self.clock.time()
        minute = int(at // WINDOW_S * WINDOW_S)
        into = at - minute
        records.add_counts(conn, project_id, model, minute, 1, tokens)  # row-locked until the commit
        prev_r, prev_t, cur_r, cur_t = records.counts(conn, project_id, model, minute)
        checks = (
            ("requests", "requests per min (RPM)", rate.get("max_requests_per_1_minute") or 0, prev_r, cur_r, 1),
            ("tokens", "tokens per min (TPM)", rate.get("max_tokens_per_1_minute") or 0, prev_t, cur_t, tokens),
        )
        for kind, name, limit, prev, cur, requested in checks:
            if not limit or _sliding(prev, cur, into) <= limit:
                continue
            before = cur - requested
            used = math.ceil(_sliding(prev, before, into))
            if requested > limit:
                message = (
                    f"Request too large for {model} in project {project_id} on {name}: Limit {limit}, "
                    f"Requested {requested}. The input or output tokens must be reduced in order to run "
                    "successfully."
                )
            else:
                wait = _retry_after(prev, before, into, requested, limit)
                message = _rate_message(model, project_id, name, limit, used, requested, wait)
            raise _Over(Refusal(kind, message))

    def settle(self, project_id: str, model: str, tokens: int) -> None:
        """Correct an admitted call's token count by `tokens` (its input + output as the provider reported them,
        minus the estimate counted at admission). Blocking."""
        rate = self.loaded().rate_limits.get((project_id, model))
        if not tokens or not rate or not rate.get("max_tokens_per_1_minute"):
            return
        minute = int(self.clock.time() // WINDOW_S * WINDOW_S)
        with self.store.write() as conn:
            records.add_counts(conn, project_id, model, minute, 0, tokens)

    def counts_tokens(self, project_id: str, model: str) -> bool:
        """Whether the project limits `model`'s tokens per minute (so a call's actual tokens must be settled)."""
        return bool((self.loaded().rate_limits.get((project_id, model)) or {}).get("max_tokens_per_1_minute"))

    # -- alerts ---------------------------------------------------------------------------------------------------

    def after_execution(self, project_id: str) -> None:
        """An execution of `project_id` ended or paused: evaluate the alerts of the project and the organization in
        a background task (call on the event loop)."""
        alerts = self.loaded().alerts
        if project_id not in alerts and ORGANIZATION not in alerts:
            return
        task = asyncio.get_running_loop().create_task(self._alerts(project_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _alerts(self, project_id: str) -> None:
        try:
            fired = await asyncio.to_thread(self.fire_due, project_id)
        except Exception:
            log.exception("evaluating spend alerts failed")
            return
        for event in fired:
            await self._deliver(event)

    def fire_due(self, project_id: str) -> list[dict[str, Any]]:
        """Record the alerts of `project_id` and of the organization that the period's spend has reached and that
        have not fired in this period (by any process); log and count each. Returns their events (the webhook's
        payloads). Blocking."""
        alerts = self.loaded().alerts
        now = self.clock.now()
        label, start, _ = period_of(now)
        fired = []
        with self.store.write() as conn:
            for scope in (project_id, ORGANIZATION):
                if scope not in alerts:
                    continue
                spent = self.spend(conn, scope)
                for alert in alerts[scope]:
                    if spent < alert["threshold_amount"] or not records.record_firing(
                        conn, alert["id"], label, now, spent
                    ):
                        continue
                    fired.append(
                        {
                            "object": "spend_alert.event",
                            "type": "spend_alert.triggered",
                            "alert": alert,
                            "project_id": None if scope == ORGANIZATION else scope,
                            "period": label,
                            "period_start": start,
                            "spend_amount": round(spent, 6),
                            "threshold_amount": alert["threshold_amount"],
                            "currency": alert["currency"],
                            "triggered_at": now,
                        }
                    )
        for event in fired:
            scope = event["project_id"] or ORGANIZATION
            metrics.SPEND_ALERTS.labels(scope).inc()
            log.warning(
                "spend alert %s fired: %s spent of %s this month",
                event["alert"]["id"],
                _dollars(event["spend_amount"]),
                _dollars(event["threshold_amount"]),
                extra={
                    "alert_id": event["alert"]["id"],
                    "scope": scope,
                    "period": event["period"],
                    "spend_amount": event["spend_amount"],
                    "threshold_amount": event["threshold_amount"],
                },
            )
        return fired

    async def _deliver(self, event: dict[str, Any]) -> None:
        """POST `event` to the webhook (when configured): up to WEBHOOK_ATTEMPTS tries, 1 s then 2 s apart."""
        if not self.webhook_url:
            return
        async with httpx.AsyncClient(timeout=self.webhook_timeout_s) as client:
            for attempt in range(1, WEBHOOK_ATTEMPTS + 1):
                try:
                    response = await client.post(self.webhook_url, json=event)
                    if response.status_code < 300:
                        metrics.SPEND_ALERT_WEBHOOKS.labels("delivered").inc()
                        return
                    problem = f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                if attempt < WEBHOOK_ATTEMPTS:
                    await asyncio.sleep(attempt)
        metrics.SPEND_ALERT_WEBHOOKS.labels("failed").inc()
        log.warning(
            "spend alert %s: the webhook failed (%s)",
            event["alert"]["id"],
            problem,
            extra={"alert_id": event["alert"]["id"], "problem": problem},
        )

    async def aclose(self) -> None:
        """Wait (briefly) for webhook deliveries in flight, then close the version connection."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.webhook_timeout_s)
        self.close()


def _rate_message(model: str, project_id: str, name: str, limit: int, used: int, requested: int, wait: int) -> str:
    """OpenAI's wording of a rate limit error (a project stands where OpenAI names the organization)."""
    return (
        f"Rate limit reached for {model} in project {project_id} on {name}: Limit {limit}, Used {used}, "
        f"Requested {requested}. Please try again in {wait}s. See /v1/organization/projects/{project_id}/rate_limits."
    )


def _spend_message(scope: str, spent: float, limit: int) -> str:
    if scope == ORGANIZATION:
        who, path = "the organization", "/v1/organization/spend_limit"
    else:
        who, path = f"project {scope}", f"/v1/organization/projects/{scope}/spend_limit"
    return (
        f"Spend limit reached for {who}: {_dollars(spent)} spent this month (UTC) of its {_dollars(limit)} hard "
        f"spend limit ({path}). Model calls resume next month or when the limit is raised."
    )
