"""Prometheus metrics: the metric families, the HTTP middleware that counts requests, the provider wrapper that
times model calls, and the gauges computed from the database at scrape time.

Counters and histograms live in prometheus_client's default registry. With PROMETHEUS_MULTIPROC_DIR set (several
server processes), they are written to files in that directory and /metrics aggregates them with
MultiProcessCollector; the scrape-time gauges come from the database, so they are the same in every process and
are never aggregated.

Names follow the OpenTelemetry GenAI semantic conventions where one exists (`gen_ai.client.operation.duration`
becomes `gen_ai_client_operation_duration_seconds`, attribute dots become underscores); the rest are
`threadline_*`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator, Sized
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .providers.base import ChatEvent, ChatRequest, ProviderError, TextDelta, ToolCallStart, Usage

if TYPE_CHECKING:
    from .sandbox import Sandbox
    from .store import Store

access_log = logging.getLogger("threadline.access")
log = logging.getLogger("threadline.runs")

TERMINAL = ("completed", "failed", "cancelled", "expired", "incomplete")
ACTIVE = ("queued", "in_progress", "requires_action", "cancelling")

# Buckets from the GenAI conventions (operation duration, time to first token) and for token counts.
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
RUN_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

GENAI_LABELS = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model")

HTTP_REQUESTS = Counter(
    "threadline_http_requests", "HTTP requests answered, by route template.", ("method", "route", "status")
)
HTTP_DURATION = Histogram(
    "threadline_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response body (streams included).",
    ("method", "route"),
)
RUNS = Counter("threadline_runs", "Runs that reached a terminal state, by that state.", ("status",))
RUN_DURATION = Histogram(
    "threadline_run_duration_seconds",
    "Run duration from creation to its terminal state.",
    ("status",),
    buckets=RUN_BUCKETS,
)
OPERATION_DURATION = Histogram(
    "gen_ai_client_operation_duration_seconds",
    "Duration of a model call (one streamed chat completion), to the end of the stream.",
    (*GENAI_LABELS, "error_type"),
    buckets=DURATION_BUCKETS,
)
TOKEN_USAGE = Histogram(
    "gen_ai_client_token_usage",
    "Tokens used per model call, as reported by the provider.",
    (*GENAI_LABELS, "gen_ai_token_type"),
    buckets=TOKEN_BUCKETS,
)
TIME_TO_FIRST_TOKEN = Histogram(
    "gen_ai_server_time_to_first_token_seconds",
    "Time from sending a model call to its first output (text or tool call).",
    GENAI_LABELS,
    buckets=TTFT_BUCKETS,
)
PROVIDER_ERRORS = Counter(
    "threadline_provider_errors",
    "Model calls that ended in an error, by provider and error code (after the provider's own retries).",
    ("gen_ai_provider_name", "error_type"),
)

RATE_LIMITED = Counter(
    "threadline_rate_limited",
    "Runs, responses and model calls refused by a limit, by limit (requests, tokens, spend).",
    ("limit",),
)
SPEND_ALERTS = Counter(
    "threadline_spend_alerts",
    "Spend alerts fired (once per alert and month), by scope (organization or project id).",
    ("scope",),
)
SPEND_ALERT_WEBHOOKS = Counter(
    "threadline_spend_alert_webhooks", "Spend alert webhook deliveries, by outcome (delivered, failed).", ("outcome",)
)

# -- runs --------------------------------------------------------------------------------------------------------


def run_finished(run: dict[str, Any]) -> None:
    """Count a run that just reached a terminal state (`run` is the run object as saved)."""
    status = run.get("status")
    if status not in TERMINAL:
        return
    RUNS.labels(status).inc()
    created = run.get("created_at")
    duration = max(0.0, time.time() - created) if isinstance(created, int | float) else None
    if duration is not None:
        RUN_DURATION.labels(status).observe(duration)
    log.info("run %s", status, extra={"status": status, "duration_s": duration, "model": run.get("model")})


# -- HTTP --------------------------------------------------------------------------------------------------------


class HTTPMetrics:
    """Outermost ASGI middleware: counts every HTTP response by method, route template and status, and times it.

    The route is the matched route's template (`/v1/threads/{thread_id}/runs`), never the raw path, so the label
    set stays bounded; requests answered before routing (401, 413) are matched against the routes here, and
    anything unmatched is `unmatched`.
    """

    def __init__(self, app: Any, routes: Any) -> None:
        self.app = app
        self.routes = routes
        self._leaves: list[Any] | None = None

    def _route(self, scope: dict) -> str:
        route = scope.get("route")
        if route is None:
            from starlette.routing import Match

            if self._leaves is None:
                self._leaves = list(_leaf_routes(self.routes()))
            partial = None
            for candidate in self._leaves:
                match = candidate.matches(scope)[0]
                if match is Match.FULL:
                    route = candidate
                    break
                if match is Match.PARTIAL and partial is None:  # the path matches, the method does not
                    partial = candidate
            route = route or partial
        return getattr(route, "path", None) or "unmatched"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def counting_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            route = self._route(scope)
            elapsed = time.perf_counter() - start
            HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
            HTTP_DURATION.labels(scope["method"], route).observe(elapsed)
            access_log.info(
                "%s %s %d",
                scope["method"],
                route,
                status,
                extra={"method": scope["method"], "route": route, "status": status, "duration_s": round(elapsed, 4)},
            )


def _leaf_routes(routes: Any) -> Iterator[Any]:
    """The app's routes, with the routers FastAPI includes by reference flattened into their own routes."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _leaf_routes(inner.routes)
        else:
            yield route


# -- providers ---------------------------------------------------------------------------------------------------


class InstrumentedProvider:
    """Wraps a ChatProvider: times each stream, records time to first token, token usage and errors, and (when
    tracing is on) opens a `chat {model}` span around it."""

    def __init__(self, provider: Any, provider_name: str) -> None:
        self._provider = provider
        self._provider_name = provider_name

    def __getattr__(self, name: str) -> Any:
        return getattr(self._provider, name)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatEvent]:
        """The wrapped provider's stream, event for event."""
        from . import tracing

        labels = ("chat", self._provider_name, request.model)
        start = time.perf_counter()
        first = None
        usage: Usage | None = None
        error: str | None = None
        with tracing.chat_span(self._provider_name, request) as span:
            try:
                async for event in self._provider.stream(request):
                    if first is None and isinstance(event, TextDelta | ToolCallStart):
                        first = time.perf_counter() - start
                        TIME_TO_FIRST_TOKEN.labels(*labels).observe(first)
                    if isinstance(event, Usage):
                        usage = event
                    yield event
            except ProviderError as exc:
                error = str(exc.code)
                PROVIDER_ERRORS.labels(self._provider_name, error).inc()
                tracing.record_error(span, error, exc)
                raise
            except GeneratorExit:
                error = "cancelled"
                raise
            except BaseException as exc:
                error = type(exc).__name__
                if not isinstance(exc, Exception):  # CancelledError: the run was cancelled, not a provider fault
                    error = "cancelled"
                else:
                    PROVIDER_ERRORS.labels(self._provider_name, error).inc()
                    tracing.record_error(span, error, exc)
                raise
            finally:
                OPERATION_DURATION.labels(*labels, error or "").observe(time.perf_counter() - start)
                if usage is not None:
                    TOKEN_USAGE.labels(*labels, "input").observe(usage.prompt_tokens)
                    TOKEN_USAGE.labels(*labels, "output").observe(usage.completion_tokens)
                tracing.finish_chat_span(span, usage)


class InstrumentedRouter:
    """A ProviderRouter whose resolve() hands out InstrumentedProviders; everything else is the router's own."""

    def __init__(self, router: Any) -> None:
        self._router = router

    def __getattr__(self, name: str) -> Any:
        return getattr(self._router, name)

    def resolve(self, model: str) -> tuple[Any, str]:
        """(provider, upstream model name) as ProviderRouter.resolve, the provider wrapped; raises the same errors."""
        provider, upstream = self._router.resolve(model)
        return InstrumentedProvider(provider, self._router.route_for(model).provider), upstream


# -- scrape-time gauges ------------------------------------------------------------------------------------------


class RuntimeCollector(Collector):
    """Gauges read at scrape time: runs by active state, the queue's depth and oldest age, the ingestion backlog,
    and sandbox sessions. Each scrape costs a few indexed COUNT queries."""

    def __init__(self, store: Store, executing: Sized, sandbox: Sandbox) -> None:
        self.store = store
        self.executing = executing  # the run ids this process executes now (read at scrape time)
        self.sandbox = sandbox

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from .store import schema

        runs, files = schema.runs, schema.vector_store_files
        with self.store.read() as conn:
            by_status = dict(
                conn.execute(
                    sa.select(runs.c.status, sa.func.count()).where(runs.c.status.in_(ACTIVE)).group_by(runs.c.status)
                ).all()
            )
            oldest = conn.execute(sa.select(sa.func.min(runs.c.created_at)).where(runs.c.status == "queued")).scalar()
            backlog = conn.execute(
                sa.select(sa.func.count()).select_from(files).where(files.c.status == "in_progress")
            ).scalar()
        g = GaugeMetricFamily("threadline_runs_active", "Runs in a non-terminal state, by state.", labels=["status"])
        for status in ACTIVE:
            g.add_metric([status], by_status.get(status, 0))
        yield g
        yield GaugeMetricFamily(
            "threadline_run_queue_depth", "Runs waiting in `queued`.", value=by_status.get("queued", 0)
        )
        age = max(0.0, time.time() - oldest) if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "threadline_run_queue_oldest_age_seconds", "Age of the oldest `queued` run (0 when none).", value=age
        )
        yield GaugeMetricFamily(
            "threadline_runs_executing", "Runs this process is executing now.", value=len(self.executing)
        )
        yield GaugeMetricFamily(
            "threadline_ingestion_backlog_files",
            "Vector store files waiting to be indexed (status in_progress).",
            value=backlog or 0,
        )
        stats = self.sandbox.stats()
        s = GaugeMetricFamily("threadline_sandbox_sessions", "code_interpreter sandboxes, by state.", labels=["state"])
        s.add_metric(["live"], stats["sessions"])
        s.add_metric(["warm"], stats["warm_pool"])
        yield s


def render(store: Store, executing: Sized, sandbox: Sandbox, multiprocess_dir: Path | None = None) -> tuple[bytes, str]:
    """The /metrics body and its content type: the process's (or, with `multiprocess_dir` — the settings'
    PROMETHEUS_MULTIPROC_DIR — every process's) counters and histograms, then the scrape-time gauges."""
    if multiprocess_dir:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    gauges = CollectorRegistry()
    gauges.register(RuntimeCollector(store, executing, sandbox))
    return generate_latest(registry) + generate_latest(gauges), CONTENT_TYPE_LATEST
