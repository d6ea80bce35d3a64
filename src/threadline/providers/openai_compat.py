"""Chat Completions adapter for OpenAI and every server that speaks its wire format.

Works with OpenAI, Azure OpenAI (v1 endpoint; query parameters such as ``api-version`` in the base URL are
kept), vLLM, Ollama, llama.cpp, LM Studio, Groq, OpenRouter and the like. It speaks HTTP itself, with one pooled
``httpx.AsyncClient`` per provider, and reads the SSE stream as plain dicts: the openai SDK's per-chunk models
cost about three times the CPU of the whole stream otherwise. Differences between servers that are tolerated:

* ``stream_options`` rejected (400/422 naming it): retried once without it, remembered for this provider;
* no usage in the stream: usage is counted locally;
* tool-call ids missing or not ``call_``-prefixed: generated or prefixed;
* tool-call chunks without an ``index``, or an index reused for a second call with a new id;
* ``finish_reason`` "stop" after tool calls (some local servers): reported as "tool_calls";
* SSE comments and keep-alives, events without blank lines between them, JSON split over several ``data:``
  lines, no ``[DONE]``; ``{"error": ...}`` payloads inside the stream become ProviderErrors;
* a server that ignores ``stream`` and answers with one JSON completion.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import orjson

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
_INVALID_PROMPT_CODES = ("context_length_exceeded", "invalid_request_error", "invalid_prompt")
_DRAIN_S = 1.0
_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=100, keepalive_expiry=5.0)


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
        api_key = api_key or "not-needed"  # local servers take any key
        self.base_url = base_url or "https://api.openai.com/v1"
        self.retry = retry or RetryPolicy()
        self.catalog = catalog or DEFAULT_CATALOG
        self.vision = vision
        base = httpx.URL(self.base_url)
        # the path is appended before the query, so Azure-style "...?api-version=..." base URLs keep working
        self.url = base.copy_with(path=base.path.rstrip("/") + "/chat/completions")
        # OpenAI's newer models refuse max_tokens; most other servers only know max_tokens
        self.max_tokens_param: MaxTokensParam = max_tokens_param or (
            "max_completion_tokens" if base.host == "api.openai.com" else "max_tokens"
        )
        self._send_stream_options = send_stream_options
        headers = httpx.Headers(
            {
                "authorization": f"Bearer {api_key}",
                "content-type": "application/json",
                "accept": "application/json",
                "user-agent": "threadline",
            }
        )
        for key, value in (default_headers or {}).items():
            if value is None:  # None removes a default header
                headers.pop(key, None)
            else:
                headers[key] = value
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            limits=_LIMITS,
            follow_redirects=True,
        )

    def supports_images(self, model: str) -> bool:
        return self.vision if self.vision is not None else self.catalog.supports_images(model)

    async def aclose(self) -> None:
        await self._client.aclose()

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
        if request.reasoning_effort is not None:
            body["reasoning_effort"] = request.reasoning_effort
        if request.max_tokens is not None:
            body[self.max_tokens_param] = request.max_tokens
        fmt = request.response_format
        if fmt and fmt.get("type") in ("json_object", "json_schema"):
            body["response_format"] = fmt
        return body

    # one attempt

    async def _attempt(self, request: ChatRequest, body: dict[str, Any]) -> AsyncIterator[ChatEvent]:
        body = {**body, "stream": True}
        if self._send_stream_options:
            try:
                response = await self._send({**body, "stream_options": {"include_usage": True}})
            except _StatusError as exc:
                if exc.status not in (400, 422) or "stream_options" not in exc.text:
                    raise
                self._send_stream_options = False
                response = await self._send(body)
        else:
            response = await self._send(body)

        turn = _Turn(request)
        if response.headers.get("content-type", "").lower().startswith("application/json"):
            chunks = _completion_as_chunks(response)
        else:
            chunks = _sse_chunks(response, self.base_url)
        try:
            async for chunk in chunks:
                for event in turn.feed(chunk):
                    yield event
        finally:
            await chunks.aclose()
            await response.aclose()  # before the body ends this drops the connection: the upstream stops
        for event in turn.finish():
            yield event

    async def _send(self, body: dict[str, Any]) -> httpx.Response:
        """POST the request and return the response once its headers are in; raise _StatusError for >= 400."""
        try:
            content = orjson.dumps(body)
        except TypeError:  # e.g. integers beyond 64 bits in a user schema
            content = json.dumps(body).encode()
        response = await self._client.send(self._client.build_request("POST", self.url, content=content), stream=True)
        if response.status_code >= 400:
            try:
                raw = await response.aread()
            finally:
                await response.aclose()
            raise _StatusError(response.status_code, raw, response.headers)
        return response

    def _map_error(self, exc: BaseException) -> ProviderError:
        if isinstance(exc, _StatusError):
            message = _upstream_message(exc.body) or f"Error code: {exc.status}" + (
                f" - {exc.text[:500]}" if exc.text else ""
            )
            inner = exc.body.get("error", exc.body) if isinstance(exc.body, dict) else None
            if exc.status == 429 and isinstance(inner, dict) and inner.get("code") == "insufficient_quota":
                return ProviderError("rate_limit_exceeded", message, retryable=False)
            return error_for_status(exc.status, message, retry_after=parse_retry_after(exc.headers))
        if isinstance(exc, httpx.TimeoutException):
            return ProviderError("server_error", f"The model server at {self.base_url} timed out.")
        if isinstance(exc, httpx.ConnectError):
            return ProviderError("server_error", f"Could not connect to the model server at {self.base_url}.")
        return transport_error(exc) or ProviderError(
            "server_error", f"Unexpected error from the model provider: {exc!r}", retryable=False
        )


class _StatusError(Exception):
    """An HTTP error status from the model server, with its body (JSON when it parses, else text)."""

    def __init__(self, status: int, raw: bytes, headers: httpx.Headers) -> None:
        self.status = status
        self.text = raw.decode("utf-8", "replace")
        self.headers = headers
        try:
            self.body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.body = self.text
        super().__init__(f"HTTP {status}: {self.text[:500]}")


def _stream_error(payload: Any) -> ProviderError:
    """The ProviderError for an error object sent inside a stream (``{"error": ...}`` or an ``error`` event)."""
    message = _upstream_message(payload) or "An error occurred during streaming"
    inner = payload.get("error", payload) if isinstance(payload, dict) else None
    code = ""
    if isinstance(inner, dict):
        code = str(inner.get("code") or inner.get("type") or "")
    if code == "insufficient_quota":
        return ProviderError("rate_limit_exceeded", message, retryable=False)
    if "rate_limit" in code or code == "429":
        return ProviderError("rate_limit_exceeded", message)
    if code in _INVALID_PROMPT_CODES:
        return ProviderError("invalid_prompt", message)
    return ProviderError("server_error", message)


async def _sse_chunks(response: httpx.Response, base_url: str) -> AsyncGenerator[Any, None]:
    """The JSON payload of each SSE event up to ``[DONE]``; error payloads are raised as ProviderErrors.

    An event is normally one ``data:`` line, decoded as soon as it arrives. Lines that do not decode alone are
    joined (SSE multi-line data) and decoded at the blank line that ends the event.
    """
    pending: list[str] = []
    event = ""
    seen_data = False
    lines = _lines(response)
    async for line in lines:
        if line.startswith("data:"):
            seen_data = True
            data = line[6:] if line.startswith("data: ") else line[5:]
            if not pending:
                if data == "[DONE]":
                    await _drain(lines)
                    return
                if not data.strip():
                    continue
                try:
                    payload = orjson.loads(data)
                except orjson.JSONDecodeError:
                    pending.append(data)
                    continue
                _check_payload(payload, event)
                yield payload
            else:
                pending.append(data)
        elif not line:
            if pending:
                text = "\n".join(pending)
                pending.clear()
                try:
                    payload = orjson.loads(text)
                except orjson.JSONDecodeError:
                    raise _malformed(text) from None
                _check_payload(payload, event)
                yield payload
            event = ""
        elif line.startswith("event:"):
            event = line[6:].strip()
        # other lines: ":" comments and keep-alives, "id:", "retry:" or junk; all ignored
    if pending:
        raise _malformed("\n".join(pending))
    if not seen_data:
        kind = response.headers.get("content-type", "no content type")
        raise ProviderError("server_error", f"The model server at {base_url} sent no stream events ({kind}).")


async def _lines(response: httpx.Response) -> AsyncGenerator[str, None]:
    """The body's lines without their ends (``\n``, ``\r\n`` or ``\r``, as SSE allows), decoded as UTF-8.

    The same as ``response.aiter_lines()`` for an SSE body, without its two extra generator layers (an incremental
    text decoder and a line decoder), which took about a third of the CPU of reading a stream."""
    body = response.aiter_raw() if response.headers.get("content-encoding", "identity") == "identity" else None
    pending = b""
    async for chunk in body or response.aiter_bytes():
        parts = (pending + chunk if pending else chunk).splitlines(keepends=True)
        # an unfinished line, or a final "\r" that may be the first half of "\r\n", waits for the next read
        pending = parts.pop() if parts and not parts[-1].endswith(b"\n") else b""
        for part in parts:
            yield part.rstrip(b"\r\n").decode("utf-8", "replace")
    if pending:
        yield pending.rstrip(b"\r\n").decode("utf-8", "replace")


async def _drain(lines: AsyncIterator[str]) -> None:
    """Read what follows ``[DONE]`` (normally just the end of the body), so that the connection goes back
    to the pool instead of being closed; a server that keeps the body open is cut off after a moment."""
    try:
        async with asyncio.timeout(_DRAIN_S):
            async for _ in lines:
                pass
    except TimeoutError:
        pass


def _check_payload(payload: Any, event: str) -> None:
    if isinstance(payload, dict) and payload.get("error"):
        raise _stream_error(payload)
    if event == "error":
        raise _stream_error(payload)


def _malformed(text: str) -> ProviderError:
    return ProviderError(
        "server_error", f"The model server sent a malformed stream event: {text[:200]!r}", retryable=False
    )


async def _completion_as_chunks(response: httpx.Response) -> AsyncGenerator[Any, None]:
    """A non-streaming JSON completion (a server that ignored ``stream``) as one equivalent chunk."""
    raw = await response.aread()
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _malformed(raw.decode("utf-8", "replace")) from None
    if not isinstance(payload, dict):
        raise _malformed(str(payload))
    if payload.get("error"):
        raise _stream_error(payload)
    choices = []
    for choice in payload.get("choices") or ():
        message = dict(choice.get("message") or {})
        if message.get("tool_calls"):
            message["tool_calls"] = [{**tc, "index": i} for i, tc in enumerate(message["tool_calls"])]
        choices.append({"index": choice.get("index"), "delta": message, "finish_reason": choice.get("finish_reason")})
    yield {"choices": choices, "usage": payload.get("usage")}


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
    """Folds Chat Completions chunks (decoded JSON dicts) into ChatEvents for one model turn."""

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
        if not isinstance(chunk, dict):
            return events
        usage = chunk.get("usage")
        if isinstance(usage, dict) and usage.get("prompt_tokens") is not None:
            self.usage = (usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0)
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index") not in (0, None):
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                text = delta.get("content") or delta.get("refusal")
                if text and isinstance(text, str):
                    self.text.append(text)
                    events.append(TextDelta(text))
                for tc in delta.get("tool_calls") or ():
                    if isinstance(tc, dict):
                        events.extend(self._tool_call(tc.get("index"), tc.get("id"), tc.get("function")))
                if delta.get("function_call") is not None:  # legacy single-function servers
                    events.extend(self._tool_call(0, None, delta["function_call"]))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return events

    def _tool_call(self, index: int | None, upstream_id: str | None, fn: Any) -> list[ChatEvent]:
        name = fn.get("name") if isinstance(fn, dict) else None
        args = fn.get("arguments") if isinstance(fn, dict) else None
        if not isinstance(name, str):
            name = None
        if upstream_id is not None and not isinstance(upstream_id, str):
            upstream_id = str(upstream_id)
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
