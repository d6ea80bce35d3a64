"""Optional OpenTelemetry traces following the GenAI semantic conventions; off by default.

THREADLINE_TRACING=1 turns them on. The exporter is chosen by the standard OTEL_* variables: OTEL_TRACES_EXPORTER
(`otlp`, the default, needs opentelemetry-exporter-otlp-proto-http; `console` prints spans as JSON to stdout),
OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_SERVICE_NAME (default `threadline`) and
OTEL_RESOURCE_ATTRIBUTES. Without the SDK installed, tracing stays off with a warning.

Spans: `chat {model}` (kind CLIENT) per model call, with gen_ai.operation.name, gen_ai.provider.name,
gen_ai.request.model, gen_ai.response.model, gen_ai.usage.input_tokens / output_tokens and error.type; and
`execute_tool {tool name}` (kind INTERNAL) per server-side tool call.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Settings
    from .engine.tools import ServerTool, StepDelta, TextProcessor, ToolContext, ToolOutcome
    from .providers.base import ToolSpec

log = logging.getLogger("threadline.tracing")

_tracer: Any = None


def setup(settings: Settings) -> bool:
    """Install the SDK tracer provider when `settings.tracing` (THREADLINE_TRACING=1); returns whether tracing is
    on."""
    global _tracer
    if not settings.tracing:
        return False
    if _tracer is not None:
        return True
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import OTELResourceDetector, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
    except ImportError:
        log.warning("THREADLINE_TRACING=1 but opentelemetry-sdk is not installed: tracing is off")
        return False
    resource = Resource.create({"service.name": settings.otel_service_name}).merge(OTELResourceDetector().detect())
    provider = TracerProvider(resource=resource)
    kind = settings.otel_traces_exporter
    if kind == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    elif kind == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.warning("OTEL_TRACES_EXPORTER=otlp needs opentelemetry-exporter-otlp-proto-http: tracing is off")
            return False
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    elif kind != "none":
        log.warning("unknown OTEL_TRACES_EXPORTER=%s: tracing is off", kind)
        return False
    trace.set_tracer_provider(provider)
    _tracer = trace.get_tracer("threadline")
    return True


def shutdown() -> None:
    """Flush pending spans (the batch exporter sends in the background)."""
    if _tracer is None:
        return
    from opentelemetry import trace

    flush = getattr(trace.get_tracer_provider(), "shutdown", None)
    if flush is not None:
        flush()


@contextmanager
def chat_span(provider_name: str, request: Any) -> Iterator[Any]:
    """A `chat {model}` span around one model call, or None when tracing is off.

    The span is not made current: the stream it wraps is closed from another task, where detaching a context
    token would fail."""
    if _tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind

    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider_name,
        "gen_ai.request.model": request.model,
    }
    if request.max_tokens is not None:
        attributes["gen_ai.request.max_tokens"] = request.max_tokens
    if request.temperature is not None:
        attributes["gen_ai.request.temperature"] = request.temperature
    if request.top_p is not None:
        attributes["gen_ai.request.top_p"] = request.top_p
    span = _tracer.start_span(f"chat {request.model}", kind=SpanKind.CLIENT, attributes=attributes)
    span.set_attribute("gen_ai.response.model", request.model)
    yield span


def record_error(span: Any, error_type: str, exc: BaseException) -> None:
    """Mark a span failed with the GenAI `error.type`."""
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))


def finish_chat_span(span: Any, usage: Any) -> None:
    """End a chat span with the provider's token counts."""
    if span is None:
        return
    if usage is not None:
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
    span.end()


@contextmanager
def tool_span(name: str, call_id: str | None) -> Iterator[None]:
    """An `execute_tool {name}` span around one server-side tool call (nothing when tracing is off)."""
    if _tracer is None:
        yield
        return
    from opentelemetry.trace import SpanKind, Status, StatusCode

    attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name, "gen_ai.tool.type": "function"}
    if call_id:
        attributes["gen_ai.tool.call.id"] = call_id
    span = _tracer.start_span(f"execute_tool {name}", kind=SpanKind.INTERNAL, attributes=attributes)
    try:
        yield
    except BaseException as exc:
        span.set_attribute("error.type", type(exc).__name__)
        span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))
        raise
    finally:
        span.end()


class TracedTool:
    """A server tool (file_search, code_interpreter) whose every execution is an `execute_tool {type}` span."""

    def __init__(self, tool: ServerTool) -> None:
        self._tool = tool
        self.type = tool.type
        self.function_name = tool.function_name

    def spec(self, tool_config: dict[str, Any]) -> ToolSpec:
        return self._tool.spec(tool_config)

    def instructions(self, tool_config: dict[str, Any]) -> str:
        return self._tool.instructions(tool_config)

    def first_delta(self, call_id: str) -> dict[str, Any]:
        return self._tool.first_delta(call_id)

    def text_processor(self, references: list[dict[str, Any]]) -> TextProcessor | None:
        return self._tool.text_processor(references)

    async def execute(self, ctx: ToolContext, call_id: str, arguments: str, delta: StepDelta) -> ToolOutcome:
        """The wrapped tool's execute, inside a span."""
        with tool_span(self._tool.type, call_id):
            return await self._tool.execute(ctx, call_id, arguments, delta)
