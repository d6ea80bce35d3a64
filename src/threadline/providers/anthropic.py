"""Anthropic Messages adapter, through the official ``anthropic`` SDK.

Translation rules:

* system messages (wherever they appear) are joined into the top-level ``system`` prompt;
* assistant tool calls become ``tool_use`` blocks; tool messages become ``tool_result`` blocks in a user turn
  (consecutive tool messages, and any user text after them, share one user turn: Anthropic wants
  alternating roles);
* tool-call ids are translated by swapping the prefix: ``toolu_X`` ↔ ``call_X`` (ids from elsewhere are
  prefixed), so a call made by Claude keeps its original id when it is sent back;
* the conversation is repaired where Anthropic would refuse it: a ``tool_use`` without a result gets a
  placeholder result, a result without its ``tool_use`` becomes plain text, and a conversation that does
  not start with a user turn gets a short one;
* ``response_format`` json_object / json_schema: Anthropic has no response_format, so the schema becomes
  the input schema of a tool named ``json_response`` that the model is forced to call (``tool_choice`` any
  when other tools are offered). That tool's input is streamed back as TextDelta text, so callers see a
  plain JSON answer with finish reason "stop". A schema whose root is not an object is wrapped as
  ``{"value": <schema>}`` and unwrapped on the way back (then the text arrives in one piece at the end);
* ``max_tokens`` is required by Anthropic: ``default_max_tokens`` is used when the request has none.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import anthropic
from anthropic import AsyncAnthropic

from .base import (
    ChatEvent,
    ChatMessage,
    ChatRequest,
    ErrorCode,
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

JSON_TOOL_NAME = "json_response"
START_PLACEHOLDER = "(The conversation starts here.)"
MISSING_RESULT = "(No result was recorded for this tool call.)"

_STOP: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_ERROR_TYPES: dict[str, ErrorCode] = {
    "rate_limit_error": "rate_limit_exceeded",
    "overloaded_error": "server_error",
    "api_error": "server_error",
    "timeout_error": "server_error",
    "invalid_request_error": "invalid_prompt",
    "request_too_large": "invalid_prompt",
    "not_found_error": "invalid_prompt",
}
_ID_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def to_anthropic_id(call_id: str) -> str:
    if call_id.startswith("toolu_"):
        return call_id
    rest = call_id[len("call_") :] if call_id.startswith("call_") else call_id
    return "toolu_" + _ID_UNSAFE.sub("_", rest)


def from_anthropic_id(tool_use_id: str | None) -> str:
    if tool_use_id and tool_use_id.startswith("toolu_") and len(tool_use_id) > len("toolu_"):
        return "call_" + tool_use_id[len("toolu_") :]
    return to_call_id(tool_use_id)


class AnthropicProvider:
    """A ChatProvider backed by ``POST {base_url}/v1/messages`` with ``stream=true``."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        name: str = "anthropic",
        timeout_s: float = 600.0,
        connect_timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        catalog: ModelCatalog | None = None,
        vision: bool | None = None,
        default_max_tokens: int = 4096,
        send_strict: bool = False,
        default_headers: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        api_key = api_key or "not-needed"
        self.base_url = base_url or "https://api.anthropic.com"
        self.retry = retry or RetryPolicy()
        self.catalog = catalog or DEFAULT_CATALOG
        self.vision = vision
        self.default_max_tokens = default_max_tokens
        self.send_strict = send_strict  # tool "strict" flag: only real Anthropic endpoints know it
        self._client = AsyncAnthropic(
            api_key=api_key,
            base_url=self.base_url,
            timeout=anthropic.Timeout(timeout_s, connect=connect_timeout_s),
            max_retries=0,  # retries are ours: they must stop once output has started
            default_headers=default_headers,
        )

    def supports_images(self, model: str) -> bool:
        return self.vision if self.vision is not None else self.catalog.supports_images(model)

    async def aclose(self) -> None:
        await self._client.close()

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatEvent]:
        body, json_mode = self.build_body(request)
        return with_retries(
            lambda: self._attempt(request, body, json_mode),
            self._map_error,
            self.retry,
            f"{self.name}:{request.model}",
        )

    # request translation

    def build_body(self, request: ChatRequest) -> tuple[dict[str, Any], _JsonMode | None]:
        system, messages = _messages_out(request.messages)
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens or self.default_max_tokens,
            "messages": messages,
        }
        if system:
            body["system"] = system
        tools = [self._tool(t.name, t.description, t.parameters, t.strict) for t in request.tools]
        choice = request.tool_choice
        tool_choice: dict[str, Any] | None = None
        json_mode = _JsonMode.from_format(request.response_format)
        if json_mode is not None:
            json_mode.name = _unique_name(JSON_TOOL_NAME, {t.name for t in request.tools})
            json_tool = self._tool(json_mode.name, json_mode.description, json_mode.schema, False)
            if choice == "none" or not tools:
                tools, tool_choice = [json_tool], {"type": "tool", "name": json_mode.name}
            else:
                tools.append(json_tool)
                tool_choice = {"type": "any"} if choice in ("auto", "required") else {"type": "tool", "name": choice}
        elif tools:
            tool_choice = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}.get(
                choice, {"type": "tool", "name": choice}
            )
        if tools:
            body["tools"] = tools
            assert tool_choice is not None
            if not request.parallel_tool_calls and tool_choice["type"] != "none":
                tool_choice["disable_parallel_tool_use"] = True
            body["tool_choice"] = tool_choice
        extra: dict[str, Any] = {}
        if request.temperature is not None:
            extra["temperature"] = request.temperature
        if request.top_p is not None:
            extra["top_p"] = request.top_p
        if extra:
            body["extra_body"] = extra  # this SDK version has no typed temperature/top_p parameters
        return body, json_mode

    def _tool(self, name: str, description: str | None, schema: dict | None, strict: bool) -> dict[str, Any]:
        tool: dict[str, Any] = {"name": name, "input_schema": schema or {"type": "object", "properties": {}}}
        if description:
            tool["description"] = description
        if strict and self.send_strict:
            tool["strict"] = True
        return tool

    # one attempt

    async def _attempt(
        self, request: ChatRequest, body: dict[str, Any], json_mode: _JsonMode | None
    ) -> AsyncIterator[ChatEvent]:
        stream = await self._client.messages.create(**body, stream=True)
        turn = _Turn(request, json_mode)
        try:
            async for event in stream:
                for out in turn.feed(event):
                    yield out
        finally:
            await stream.close()
        for out in turn.finish():
            yield out

    def _map_error(self, exc: BaseException) -> ProviderError:
        if isinstance(exc, anthropic.APIStatusError):
            message = exc.api_message or exc.message
            retry_after = parse_retry_after(exc.response.headers)
            code = _ERROR_TYPES.get(exc.type or "")
            if code is not None:
                return ProviderError(code, message, retry_after=retry_after)
            if exc.type in ("authentication_error", "permission_error"):
                return error_for_status(401, message)
            return error_for_status(exc.status_code, message, retry_after=retry_after)
        if isinstance(exc, anthropic.APITimeoutError):
            return ProviderError("server_error", f"The model server at {self.base_url} timed out.")
        if isinstance(exc, anthropic.APIConnectionError):
            return ProviderError("server_error", f"Could not connect to the model server at {self.base_url}.")
        if isinstance(exc, anthropic.APIError):
            return ProviderError("server_error", exc.message)
        return transport_error(exc) or ProviderError(
            "server_error", f"Unexpected error from the model provider: {exc!r}", retryable=False
        )


class _JsonMode:
    def __init__(self, schema: dict, description: str, wrapped: bool) -> None:
        self.schema = schema
        self.description = description
        self.wrapped = wrapped
        self.name = JSON_TOOL_NAME

    @classmethod
    def from_format(cls, fmt: dict | None) -> _JsonMode | None:
        kind = (fmt or {}).get("type")
        if kind == "json_object":
            return cls({"type": "object"}, "Give your complete answer as a JSON object, as this tool's input.", False)
        if kind != "json_schema":
            return None
        spec = (fmt or {}).get("json_schema") or {}
        schema = spec.get("schema") or {"type": "object"}
        description = "Give your complete answer as this tool's input, following its JSON schema."
        if spec.get("description"):
            description += " " + str(spec["description"])
        if schema.get("type") != "object":
            wrapped = {"type": "object", "properties": {"value": schema}, "required": ["value"]}
            return cls(wrapped, description + " Put the answer in the 'value' field.", True)
        return cls(schema, description, False)


def _unique_name(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}_{n}"
    return candidate


# messages


def _image_block(part: dict) -> dict[str, Any] | None:
    if part.get("type") == "image":
        data = part["data"]
        encoded = base64.b64encode(data).decode() if isinstance(data, bytes | bytearray) else str(data)
        source = {"type": "base64", "media_type": part.get("mime_type", "image/png"), "data": encoded}
        return {"type": "image", "source": source}
    url = str(part.get("url", ""))
    match = re.match(r"data:([^;,]+);base64,(.*)", url, re.S)
    if match:
        source = {"type": "base64", "media_type": match.group(1), "data": match.group(2)}
        return {"type": "image", "source": source}
    return {"type": "image", "source": {"type": "url", "url": url}} if url else None


def _blocks(content: str | list[dict] | None) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    out: list[dict[str, Any]] = []
    for part in content:
        if part.get("type") == "text":
            if part.get("text"):
                out.append({"type": "text", "text": part["text"]})
        elif part.get("type") in ("image", "image_url"):
            block = _image_block(part)
            if block:
                out.append(block)
    return out


def _tool_input(arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments) if arguments else {}
    except json.JSONDecodeError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}


def _messages_out(messages: list[ChatMessage]) -> tuple[str, list[dict[str, Any]]]:
    system_parts: list[str] = []
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": list(blocks)})

    for m in messages:
        if m.role == "system":
            text = message_text(m.content)
            if text:
                system_parts.append(text)
        elif m.role == "user":
            add("user", _blocks(m.content))
        elif m.role == "assistant":
            blocks = [b for b in _blocks(m.content) if b["type"] == "text"]
            for tc in m.tool_calls or []:
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": to_anthropic_id(tc.id),
                        "name": tc.name,
                        "input": _tool_input(tc.arguments),
                    }
                )
            add("assistant", blocks)
        elif m.role == "tool":
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": to_anthropic_id(m.tool_call_id or "")}
            parts = _blocks(m.content)
            if any(p["type"] == "image" for p in parts):
                result["content"] = parts
            else:
                result["content"] = message_text(m.content)
            add("user", [result])
    _repair(turns)
    return "\n\n".join(system_parts), turns


def _repair(turns: list[dict[str, Any]]) -> None:
    """Make the turn list acceptable to Anthropic (see the module docstring)."""
    expected: set[str] = set()
    i = 0
    while i < len(turns):
        turn = turns[i]
        if turn["role"] == "user":
            fixed = []
            for block in turn["content"]:
                if block["type"] == "tool_result" and block["tool_use_id"] not in expected:
                    text = block["content"] if isinstance(block["content"], str) else message_text(block["content"])
                    block = {"type": "text", "text": f"Result of tool call {block['tool_use_id']}: {text}"}
                elif block["type"] == "tool_result":
                    expected.discard(block["tool_use_id"])
                fixed.append(block)
            # tool results must come first in their turn
            fixed.sort(key=lambda b: b["type"] != "tool_result")
            turn["content"] = fixed
            expected = set()
        else:
            ids = [b["id"] for b in turn["content"] if b["type"] == "tool_use"]
            nxt = turns[i + 1] if i + 1 < len(turns) else None
            have = {b.get("tool_use_id") for b in nxt["content"]} if nxt and nxt["role"] == "user" else set()
            missing = [
                {"type": "tool_result", "tool_use_id": tid, "content": MISSING_RESULT} for tid in ids if tid not in have
            ]
            if missing and nxt is not None:
                if nxt["role"] == "user":
                    nxt["content"][:0] = missing
                else:
                    turns.insert(i + 1, {"role": "user", "content": missing})
            expected = set(ids)
        i += 1
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": [{"type": "text", "text": START_PLACEHOLDER}]})
    last = turns[-1]
    if last["role"] == "assistant" and last["content"] and last["content"][-1]["type"] == "text":
        # a trailing assistant turn is a prefill, and Anthropic refuses trailing whitespace there
        last["content"][-1]["text"] = last["content"][-1]["text"].rstrip() or "."


# streaming


class _Turn:
    """Folds Anthropic stream events into ChatEvents for one model turn."""

    def __init__(self, request: ChatRequest, json_mode: _JsonMode | None) -> None:
        self.request = request
        self.json_mode = json_mode
        self.blocks: dict[int, tuple[str, int]] = {}  # block index → ("text"|"tool"|"json"|"skip", tool index)
        self.calls: list[ToolCallStart] = []
        self.call_has_args: dict[int, bool] = {}
        self.json_buffer: list[str] = []
        self.json_seen = False
        self.text: list[str] = []
        self.arguments: list[str] = []
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.stop_reason: str | None = None

    def _text(self, text: str) -> list[ChatEvent]:
        if not text:
            return []
        self.text.append(text)
        return [TextDelta(text)]

    def feed(self, event: Any) -> list[ChatEvent]:
        kind = getattr(event, "type", None)
        if kind == "message_start":
            self._usage(getattr(getattr(event, "message", None), "usage", None))
            return []
        if kind == "content_block_start":
            return self._block_start(event.index, event.content_block)
        if kind == "content_block_delta":
            return self._block_delta(event.index, event.delta)
        if kind == "content_block_stop":
            return self._block_stop(event.index)
        if kind == "message_delta":
            delta = getattr(event, "delta", None)
            self.stop_reason = getattr(delta, "stop_reason", None) or self.stop_reason
            self._usage(getattr(event, "usage", None))
        return []

    def _usage(self, usage: Any) -> None:
        if usage is None:
            return
        prompt = getattr(usage, "input_tokens", None)
        if prompt is not None:
            cached = (getattr(usage, "cache_creation_input_tokens", None) or 0) + (
                getattr(usage, "cache_read_input_tokens", None) or 0
            )
            self.input_tokens = prompt + cached
        output = getattr(usage, "output_tokens", None)
        if output is not None:
            self.output_tokens = output

    def _block_start(self, index: int, block: Any) -> list[ChatEvent]:
        kind = getattr(block, "type", None)
        if kind == "text":
            self.blocks[index] = ("text", -1)
            return self._text(getattr(block, "text", "") or "")
        if kind == "tool_use" and self.json_mode is not None and block.name == self.json_mode.name:
            self.blocks[index] = ("json", -1)
            self.json_seen = True
            initial = getattr(block, "input", None)
            if initial:  # servers that send the whole input up front
                return self._json_fragment(json.dumps(initial))
            return []
        if kind == "tool_use":
            start = ToolCallStart(len(self.calls), from_anthropic_id(getattr(block, "id", None)), block.name)
            self.calls.append(start)
            self.blocks[index] = ("tool", start.index)
            events: list[ChatEvent] = [start]
            initial = getattr(block, "input", None)
            if initial:
                events.append(self._arguments(start.index, json.dumps(initial)))
            return events
        self.blocks[index] = ("skip", -1)  # thinking, server tools, ...
        return []

    def _arguments(self, index: int, fragment: str) -> ToolCallDelta:
        self.call_has_args[index] = True
        self.arguments.append(fragment)
        return ToolCallDelta(index, fragment)

    def _json_fragment(self, fragment: str) -> list[ChatEvent]:
        assert self.json_mode is not None
        if self.json_mode.wrapped:
            self.json_buffer.append(fragment)
            return []
        return self._text(fragment)

    def _block_delta(self, index: int, delta: Any) -> list[ChatEvent]:
        kind, tool_index = self.blocks.get(index, ("skip", -1))
        dtype = getattr(delta, "type", None)
        if kind == "text" and dtype == "text_delta":
            return self._text(delta.text)
        if dtype == "input_json_delta" and delta.partial_json:
            if kind == "tool":
                return [self._arguments(tool_index, delta.partial_json)]
            if kind == "json":
                return self._json_fragment(delta.partial_json)
        return []

    def _block_stop(self, index: int) -> list[ChatEvent]:
        kind, tool_index = self.blocks.get(index, ("skip", -1))
        if kind == "tool" and not self.call_has_args.get(tool_index):
            return [self._arguments(tool_index, "{}")]
        if kind == "json" and self.json_mode is not None and self.json_mode.wrapped:
            raw = "".join(self.json_buffer)
            self.json_buffer.clear()
            try:
                value = json.loads(raw).get("value")
                return self._text(json.dumps(value))
            except (json.JSONDecodeError, AttributeError):
                return self._text(raw)
        return []

    def finish(self) -> list[ChatEvent]:
        if self.input_tokens is not None and self.output_tokens is not None:
            usage = Usage(self.input_tokens, self.output_tokens)
        else:
            completion = count_tokens("".join(self.text) + "".join(self.arguments), self.request.model)
            prompt = self.input_tokens if self.input_tokens is not None else prompt_token_estimate(self.request)
            usage = Usage(prompt, self.output_tokens if self.output_tokens is not None else completion)
        reason = _STOP.get(self.stop_reason or "", "stop")
        if reason == "tool_calls" and not self.calls:
            reason = "stop"  # only the json_response tool was called
        elif reason == "stop" and self.calls:
            reason = "tool_calls"
        return [usage, Finish(reason)]
