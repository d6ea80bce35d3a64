"""Provider-neutral chat types, the ChatProvider protocol, errors, and the retry loop shared by adapters.

A provider turns one ChatRequest into one model turn, streamed as ChatEvents. Every successful stream ends
with exactly one Usage followed by exactly one Finish. Tool-call ids always start with ``call_``.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import secrets
import string
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

log = logging.getLogger("threadline.providers")

ErrorCode = Literal["rate_limit_exceeded", "server_error", "invalid_prompt"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text


@dataclass
class ChatMessage:
    role: Literal["system", "user", "assistant", "tool"]
    # list parts: {"type":"text","text":...} | {"type":"image","data":bytes,"mime_type":"image/png"}
    #             | {"type":"image_url","url":...}
    content: str | list[dict] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None


@dataclass
class ToolSpec:
    name: str
    description: str | None
    parameters: dict | None
    strict: bool = False


@dataclass
class ChatRequest:
    model: str
    messages: list[ChatMessage]
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: Literal["auto", "none", "required"] | str = "auto"  # any other string forces that function
    parallel_tool_calls: bool = True
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    response_format: dict | None = None  # {"type":"json_object"} | {"type":"json_schema","json_schema":{...}}
    reasoning_effort: str | None = None  # "none" | "minimal" | "low" | "medium" | "high" | ...; None: not sent


@dataclass
class TextDelta:
    text: str


@dataclass
class ToolCallStart:
    index: int
    id: str
    name: str


@dataclass
class ToolCallDelta:
    index: int
    arguments: str


@dataclass
class Usage:
    prompt_tokens: int
    completion_tokens: int


@dataclass
class Finish:
    reason: FinishReason


ChatEvent = TextDelta | ToolCallStart | ToolCallDelta | Usage | Finish


class ProviderError(Exception):
    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        retry_after: float | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.retry_after = retry_after  # seconds the upstream asked us to wait, when it said so
        # default: rate limits and server errors are retried; bad credentials (server_error) are not
        self.retryable = code != "invalid_prompt" if retryable is None else retryable


@runtime_checkable
class ChatProvider(Protocol):
    name: str

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatEvent]: ...

    def supports_images(self, model: str) -> bool: ...


@dataclass
class RetryPolicy:
    """Retries happen only before the first event reaches the caller."""

    max_attempts: int = 3
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_retry_after_s: float = 30.0  # a longer retry-after is not waited for: the error is raised at once

    def delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None when we should give up."""
        if attempt >= self.max_attempts:
            return None
        if retry_after is not None:
            return None if retry_after > self.max_retry_after_s else max(0.0, retry_after)
        backoff = min(self.max_delay_s, self.base_delay_s * (2 ** (attempt - 1)))
        return backoff * random.uniform(0.75, 1.25)


_ALNUM = string.ascii_letters + string.digits


def new_call_id() -> str:
    return "call_" + "".join(secrets.choice(_ALNUM) for _ in range(24))


def to_call_id(upstream_id: str | None) -> str:
    """Upstream tool-call id → our id: unchanged when it already starts with call_, else prefixed."""
    if not upstream_id:
        return new_call_id()
    return upstream_id if upstream_id.startswith("call_") else "call_" + upstream_id


def parse_retry_after(headers: object) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    ms = get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    value = get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def count_tokens(text: str, model: str) -> int:
    """Local token count used when the upstream reports no usage."""
    if not text:
        return 0
    try:
        from threadline.tokens import count_tokens as _count
    except ImportError:  # the tokenizer module is optional at this layer
        return max(1, (len(text) + 3) // 4)
    return _count(text, model)


def message_text(content: str | list[dict] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if part.get("type") == "text")


def prompt_token_estimate(request: ChatRequest, extra: str = "") -> int:
    """Rough prompt size: message texts, tool calls and tool schemas, plus a few tokens of framing each."""
    import json

    pieces: list[str] = []
    for m in request.messages:
        pieces.append(m.role)
        pieces.append(message_text(m.content))
        for tc in m.tool_calls or []:
            pieces.append(tc.name)
            pieces.append(tc.arguments)
    for t in request.tools:
        pieces.append(json.dumps({"name": t.name, "description": t.description, "parameters": t.parameters}))
    if extra:
        pieces.append(extra)
    framing = 4 * len(request.messages) + 3
    return count_tokens("\n".join(pieces), request.model) + framing


async def with_retries(
    attempt: Callable[[], AsyncIterator[ChatEvent]],
    map_error: Callable[[BaseException], ProviderError],
    policy: RetryPolicy,
    label: str,
) -> AsyncIterator[ChatEvent]:
    """Run ``attempt()`` and retry it on retryable errors, but only while nothing has been yielded yet.

    Every exception raised by an attempt leaves as a ProviderError (via ``map_error``).
    """
    n = 0
    while True:
        n += 1
        started = False
        agen = attempt()
        try:
            while True:
                try:
                    event = await agen.__anext__()
                except StopAsyncIteration:
                    return
                except ProviderError as exc:
                    err = exc
                except Exception as exc:  # noqa: BLE001 - translated, never swallowed
                    err = map_error(exc)
                    err.__cause__ = exc
                else:
                    started = True
                    yield event
                    continue
                wait = None if started or not err.retryable else policy.delay(n, err.retry_after)
                if wait is None:
                    raise err
                log.warning("%s: attempt %d failed (%s: %s); retrying in %.2fs", label, n, err.code, err, wait)
                break
        finally:
            aclose = getattr(agen, "aclose", None)
            if aclose is not None:
                await aclose()
        await asyncio.sleep(wait)


def error_for_status(status: int, message: str, *, retry_after: float | None = None) -> ProviderError:
    """The run-level error for an upstream HTTP status."""
    if status == 429:
        return ProviderError("rate_limit_exceeded", message, retry_after=retry_after)
    if status >= 500 or status in (408, 409):
        return ProviderError("server_error", message, retry_after=retry_after)
    if status in (401, 403):
        return ProviderError("server_error", f"The model provider refused our credentials: {message}", retryable=False)
    return ProviderError("invalid_prompt", message)


def transport_error(exc: BaseException) -> ProviderError | None:
    """A ProviderError for low-level connection failures from httpx/httpx2, else None."""
    for module_name in ("httpx2", "httpx"):
        module = sys.modules.get(module_name)
        transport = getattr(module, "TransportError", None) if module else None
        if transport is not None and isinstance(exc, transport):
            return ProviderError("server_error", f"Connection to the model server failed: {exc!r}")
    if isinstance(exc, (ConnectionError, TimeoutError, asyncio.TimeoutError)):
        return ProviderError("server_error", f"Connection to the model server failed: {exc!r}")
    return None
