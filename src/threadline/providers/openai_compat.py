"""Chat Completions adapter for OpenAI and every server that speaks its wire format.

Works with OpenAI, Azure OpenAI (v1 endpoint), vLLM, Ollama, llama.cpp, LM Studio, Groq, OpenRouter and the
like, through the official ``openai`` SDK. Differences between servers that are tolerated:

* ``stream_options`` rejected (400/422 naming it): retried once without it, remembered for this provider;
* no usage in the stream: usage is counted locally;
* tool-call ids missing or not ``call_``-prefixed: generated or prefixed;
* tool-call chunks without an ``index``, or an index reused for a second call with a new id;
* ``finish_reason`` "stop" after tool calls (some local servers): reported as "tool_calls".
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlparse

import openai
from openai import AsyncOpenAI

from .base import (
    ChatEvent,
    ChatMessage,
    ChatRequest,
    Finish,
    FinishReason,
    ProviderError,
    RetryPolicy,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    count_tokens,
    error_for_status,
    message_text,
    parse_retry_after,
    prompt_token_estimate,
    to_call_id,
    transport_error,
    with_retries,
)
from .models import DEFAULT_CATALOG, ModelCatalog

MaxTokensParam = Literal["max_tokens", "max_completion_tokens"]

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


class OpenAICompatProvider:
    """A ChatProvider backed by ``POST {base_url}/chat/completions`` with ``stream=true``."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        name: str = "openai",
        timeout_s: float = 600.0,
        connect_timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        catalog: ModelCatalog | None = None,
        vision: bool | None = None,
        max_tokens_param: MaxTokensParam | None = None,
        default_headers: dict[str, str] | None = None,
        send_stream_options: bool = True,
    ) -> None:
        self.name = name
        api_key = api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"  # local servers take any key
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self.base_url = base_url or "https://api.openai.com/v1"
        self.retry = retry or RetryPolicy()
        self.catalog = catalog or DEFAULT_CATALOG
        self.vision = vision
        host = urlparse(self.base_url).hostname or ""
        # OpenAI's newer models refuse max_tokens; most other servers only know max_tokens
        self.max_tokens_param: MaxTokensParam = max_tokens_param or (
            "max_completion_tokens" if host == "api.openai.com" else "max_tokens"
        )
        self._send_stream_options = send_stream_options
        self._client = AsyncOpenAI(
            api_key=api_key,
            base_url=self.base_url,
            timeout=openai.Timeout(timeout_s, connect=connect_timeout_s),
            max_retries=0,  # retries are ours: they must stop once output has started
            default_headers=default_headers,
        )

    def supports_images(self, model: str) -> bool:
        return self.vision if self.vision is not None else self.catalog.supports_images(model)

    async def aclose(self) -> None:
        await self._client.close()

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatEvent]:
        body = self.build_body(request)
        return with_retries(
            lambda: self._attempt(request, body), self._map_error, self.retry, f"{self.name}:{request.model}"
        )

    # request translation

    def build_body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [_message_out(m) for m in request.messages],
        }
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        **({"description": t.description} if t.description else {}),
                        "parameters": t.parameters or {"type": "object", "properties": {}},
                        **({"strict": True} if t.strict else {}),
                    },
                }
                for t in request.tools
            ]
            choice = request.tool_choice
            if choice in ("auto", "none", "required"):
                body["tool_choice"] = choice
            else:
                body["tool_choice"] = {"type": "function", "function": {"name": choice}}
            body["parallel_tool_calls"] = request.parallel_tool_calls
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.max_tokens is not None:
            body[self.max_tokens_param] = request.max_tokens
        fmt = request.response_format
        if fmt and fmt.get("type") in ("json_object", "json_schema"):
            body["response_format"] = fmt
        return body

    # one attempt

    async def _attempt(self, request: ChatRequest, body: dict[str, Any]) -> AsyncIterator[ChatEvent]:
        completions = self._client.chat.completions
        with_usage = self._send_stream_options
        try:
            extra = {"stream_options": {"include_usage": True}} if with_usage else {}
            stream = await completions.create(**body, stream=True, **extra)
        except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
            if not (with_usage and "stream_options" in f"{exc} {exc.body}"):
                raise
            self._send_stream_options = False
            stream = await completions.create(**body, stream=True)

        turn = _Turn(request)
        try:
            async for chunk in stream:
                for event in turn.feed(chunk):
                    yield event
        finally:
            await stream.close()
        for event in turn.finish():
            yield event

    def _map_error(self, exc: BaseException) -> ProviderError:
        if isinstance(exc, openai.APIStatusError):
            message = _upstream_message(exc.body) or exc.message
            if exc.status_code == 429 and isinstance(exc.body, dict) and exc.body.get("code") == "insufficient_quota":
                return ProviderError("rate_limit_exceeded", message, retryable=False)
            return error_for_status(exc.status_code, message, retry_after=parse_retry_after(exc.response.headers))
        if isinstance(exc, openai.APITimeoutError):
            return ProviderError("server_error", f"The model server at {self.base_url} timed out.")
        if isinstance(exc, openai.APIConnectionError):
            return ProviderError("server_error", f"Could not connect to the model server at {self.base_url}.")
        if isinstance(exc, openai.APIError):  # an error object inside the stream
            message = _upstream_message(exc.body) or exc.message
            body = exc.body if isinstance(exc.body, dict) else {}
            code = str(exc.code or body.get("code") or body.get("type") or "")
            if "rate_limit" in code:
                return ProviderError("rate_limit_exceeded", message)
            if code in ("context_length_exceeded", "invalid_request_error", "invalid_prompt"):
                return ProviderError("invalid_prompt", message)
            return ProviderError("server_error", message)
        return transport_error(exc) or ProviderError(
            "server_error", f"Unexpected error from the model provider: {exc!r}", retryable=False
        )


def _upstream_message(body: object) -> str | None:
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
        if isinstance(inner, str):
            return inner
        if isinstance(body.get("detail"), str):  # FastAPI-style servers
            return body["detail"]
    if isinstance(body, str) and body:
        return body
    return None


def _image_url(part: dict) -> dict[str, Any]:
    if part.get("type") == "image":
        data = part["data"]
        encoded = base64.b64encode(data).decode() if isinstance(data, bytes | bytearray) else str(data)
        url = f"data:{part.get('mime_type', 'image/png')};base64,{encoded}"
    else:
        url = part["url"]
    image: dict[str, Any] = {"url": url}
    if part.get("detail"):
        image["detail"] = part["detail"]
    return {"type": "image_url", "image_url": image}


def _content_out(content: str | list[dict] | None) -> str | list[dict]:
    """Plain text stays a string (what every server accepts); parts are used only when images are present."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if all(p.get("type") == "text" for p in content):
        return message_text(content)
    parts: list[dict] = []
    for p in content:
        if p.get("type") == "text":
            parts.append({"type": "text", "text": p.get("text", "")})
        elif p.get("type") in ("image", "image_url"):
            parts.append(_image_url(p))
    return parts


def _message_out(m: ChatMessage) -> dict[str, Any]:
    if m.role == "tool":
        return {"role": "tool", "tool_call_id": m.tool_call_id or "", "content": message_text(m.content)}
    if m.role == "assistant":
        out: dict[str, Any] = {"role": "assistant"}
        text = message_text(m.content)
        if m.tool_calls:
            out["content"] = text or None
            out["tool_calls"] = [
                {"id": tc.id, "type": "function", "function": {"name": tc.name, "arguments": tc.arguments or "{}"}}
                for tc in m.tool_calls
            ]
        else:
            out["content"] = text
    elif m.role == "system":
        out = {"role": "system", "content": message_text(m.content)}
    else:
        out = {"role": "user", "content": _content_out(m.content)}
    if m.name:
        out["name"] = m.name
    return out


@dataclass
class _Call:
    index: int
    upstream_id: str | None = None
    name: str = ""
    id: str = ""
    started: bool = False
    pending: list[str] = field(default_factory=list)
    has_arguments: bool = False


class _Turn:
    """Folds Chat Completions chunks into ChatEvents for one model turn."""

    def __init__(self, request: ChatRequest) -> None:
        self.request = request
        self.calls: list[_Call] = []
        self.by_upstream: dict[object, _Call] = {}
        self.text: list[str] = []
        self.arguments: list[str] = []
        self.usage: tuple[int, int] | None = None
        self.finish_reason: str | None = None

    def feed(self, chunk: Any) -> list[ChatEvent]:
        events: list[ChatEvent] = []
        usage = getattr(chunk, "usage", None)
        if usage is not None and usage.prompt_tokens is not None:
            self.usage = (usage.prompt_tokens or 0, usage.completion_tokens or 0)
        for choice in chunk.choices or []:
            if choice.index not in (0, None):
                continue
            delta = choice.delta
            if delta is not None:
                text = delta.content or getattr(delta, "refusal", None)
                if text:
                    self.text.append(text)
                    events.append(TextDelta(text))
                for tc in delta.tool_calls or []:
                    events.extend(self._tool_call(tc.index, tc.id, tc.function))
                if getattr(delta, "function_call", None) is not None:  # legacy single-function servers
                    events.extend(self._tool_call(0, None, delta.function_call))
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason
        return events

    def _tool_call(self, index: int | None, upstream_id: str | None, fn: Any) -> list[ChatEvent]:
        name = getattr(fn, "name", None) if fn is not None else None
        args = getattr(fn, "arguments", None) if fn is not None else None
        if args is not None and not isinstance(args, str):
            args = json.dumps(args)
        if index is None:  # no index: a new id starts a new call, otherwise continue the last one
            index = len(self.by_upstream) if (upstream_id or not self.calls) else list(self.by_upstream)[-1]
        call = self.by_upstream.get(index)
        if call is not None and upstream_id and call.upstream_id and upstream_id != call.upstream_id and name:
            call = None  # the server reused the index for another call
        if call is None:
            call = _Call(index=len(self.calls), upstream_id=upstream_id or None)
            self.calls.append(call)
            self.by_upstream[index] = call
        elif upstream_id and not call.upstream_id:
            call.upstream_id = upstream_id
        if name and not call.name:
            call.name = name
        events: list[ChatEvent] = []
        if args:
            call.pending.append(args)
            self.arguments.append(args)
        if not call.started and call.name:
            events.append(self._start(call))
        if call.started and call.pending:
            events.append(ToolCallDelta(call.index, "".join(call.pending)))
            call.pending.clear()
            call.has_arguments = True
        return events

    def _start(self, call: _Call) -> ToolCallStart:
        call.started = True
        call.id = to_call_id(call.upstream_id)
        return ToolCallStart(call.index, call.id, call.name)

    def finish(self) -> list[ChatEvent]:
        events: list[ChatEvent] = []
        for call in self.calls:
            if not call.started:
                events.append(self._start(call))
            if call.pending:
                events.append(ToolCallDelta(call.index, "".join(call.pending)))
                call.pending.clear()
                call.has_arguments = True
            if not call.has_arguments:  # a function without parameters: still valid JSON
                events.append(ToolCallDelta(call.index, "{}"))
        if self.usage is not None:
            events.append(Usage(*self.usage))
        else:
            completion = count_tokens("".join(self.text) + "".join(self.arguments), self.request.model)
            events.append(Usage(prompt_token_estimate(self.request), completion))
        events.append(Finish(self._reason()))
        return events

    def _reason(self) -> FinishReason:
        reason = _FINISH.get(self.finish_reason or "", "stop")
        if self.calls and reason == "stop":
            return "tool_calls"
        return reason
