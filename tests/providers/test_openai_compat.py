"""OpenAICompatProvider against the FakeOpenAI test double over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from types import SimpleNamespace

import pytest

from fakes import Reply, ToolCallSpec
from threadline.providers.base import (
    ChatMessage,
    ChatRequest,
    Finish,
    ProviderError,
    RetryPolicy,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    ToolSpec,
    Usage,
    count_tokens,
)
from threadline.providers.openai_compat import OpenAICompatProvider, _Turn

FAST_RETRY = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02)


def provider(fake, **kwargs) -> OpenAICompatProvider:
    kwargs.setdefault("retry", FAST_RETRY)
    return OpenAICompatProvider(api_key="sk-test", base_url=fake.base_url, **kwargs)


def request(text: str = "Hi there", **kwargs) -> ChatRequest:
    return ChatRequest(model="gpt-4o", messages=[ChatMessage("user", text)], **kwargs)


def collect(make_provider, req: ChatRequest) -> list:
    async def go():
        p = make_provider()
        try:
            return [event async for event in p.stream(req)]
        finally:
            await p.aclose()

    return asyncio.run(go())


def collect_until_error(make_provider, req: ChatRequest) -> tuple[list, ProviderError]:
    events: list = []

    async def go():
        p = make_provider()
        try:
            async for event in p.stream(req):
                events.append(event)
        finally:
            await p.aclose()

    with pytest.raises(ProviderError) as info:
        asyncio.run(go())
    return events, info.value


def text_of(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def assert_well_formed(events: list) -> None:
    assert isinstance(events[-2], Usage) and isinstance(events[-1], Finish)
    assert sum(isinstance(e, Usage) for e in events) == 1
    assert sum(isinstance(e, Finish) for e in events) == 1
    started: set[int] = set()
    for e in events:
        if isinstance(e, ToolCallStart):
            assert e.id.startswith("call_")
            started.add(e.index)
        if isinstance(e, ToolCallDelta):
            assert e.index in started


def test_text_streaming_with_upstream_usage(fake_openai):
    fake_openai.script(Reply(text="Hello brave new world", chunks=3, prompt_tokens=11, completion_tokens=4))
    events = collect(lambda: provider(fake_openai), request())
    assert_well_formed(events)
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) == 3
    assert text_of(events) == "Hello brave new world"
    assert events[-2] == Usage(11, 4)
    assert events[-1] == Finish("stop")
    body = fake_openai.requests[0]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [{"role": "user", "content": "Hi there"}]
    assert "tools" not in body and "parallel_tool_calls" not in body and "tool_choice" not in body
    assert fake_openai.request_headers[0]["authorization"] == "Bearer sk-test"


def test_parallel_tool_calls_split_across_chunks(fake_openai):
    args0 = json.dumps({"city": "Paris", "unit": "celsius"})
    args1 = json.dumps({"city": "Tokyo"})
    fake_openai.script(
        Reply(tool_calls=[ToolCallSpec("get_weather", args0, chunks=4), ToolCallSpec("get_time", args1, chunks=3)])
    )
    tools = [ToolSpec("get_weather", "Weather", {"type": "object"}), ToolSpec("get_time", None, None)]
    events = collect(lambda: provider(fake_openai), request(tools=tools))
    assert_well_formed(events)
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    assert [(s.index, s.name) for s in starts] == [(0, "get_weather"), (1, "get_time")]
    assert starts[0].id != starts[1].id
    for index, expected, pieces in ((0, args0, 4), (1, args1, 3)):
        deltas = [e.arguments for e in events if isinstance(e, ToolCallDelta) and e.index == index]
        assert len(deltas) == pieces
        assert "".join(deltas) == expected
    assert events[-1] == Finish("tool_calls")
    body = fake_openai.requests[0]
    assert body["tool_choice"] == "auto"
    assert body["parallel_tool_calls"] is True
    assert body["tools"][0] == {
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object"}},
    }
    assert body["tools"][1]["function"]["parameters"] == {"type": "object", "properties": {}}


def test_tool_call_ids_prefixed_or_generated(fake_openai):
    fake_openai.script(Reply(tool_calls=[ToolCallSpec("a", "{}", id="abc123"), ToolCallSpec("b", "{}", id="")]))
    events = collect(lambda: provider(fake_openai), request(tools=[ToolSpec("a", None, None)]))
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    assert starts[0].id == "call_abc123"
    assert starts[1].id.startswith("call_") and len(starts[1].id) > 10


def test_usage_absent_is_counted_locally(fake_openai):
    text = "The quick brown fox jumps over the lazy dog"
    fake_openai.script(Reply(text=text, usage=False))
    req = request("Tell me about foxes")
    events = collect(lambda: provider(fake_openai), req)
    assert_well_formed(events)
    usage = events[-2]
    assert usage.completion_tokens == count_tokens(text, "gpt-4o")
    assert usage.prompt_tokens >= count_tokens("Tell me about foxes", "gpt-4o")


def test_stream_options_rejected_falls_back_once(fake_openai):
    fake_openai.reject_stream_options = True
    fake_openai.script(Reply(text="one"), Reply(text="two"))

    async def go():
        p = provider(fake_openai)
        first = [e async for e in p.stream(request())]
        second = [e async for e in p.stream(request())]
        await p.aclose()
        return first, second

    first, second = asyncio.run(go())
    assert text_of(first) == "one" and text_of(second) == "two"
    assert isinstance(first[-2], Usage) and isinstance(second[-2], Usage)
    # 400 with stream_options, then without; the provider remembers for the next call
    assert ["stream_options" in b for b in fake_openai.requests] == [True, False, False]


def test_retries_on_429_and_500_then_success(fake_openai):
    fake_openai.script(Reply(error=429, retry_after=0), Reply(error=500), Reply(text="finally"))
    events = collect(lambda: provider(fake_openai), request())
    assert text_of(events) == "finally"
    assert len(fake_openai.requests) == 3


@pytest.mark.parametrize(
    ("status", "code"), [(500, "server_error"), (503, "server_error"), (429, "rate_limit_exceeded")]
)
def test_error_after_retries_exhausted(fake_openai, status, code):
    fake_openai.script(*[Reply(error=status, message=f"upstream says {status}", retry_after=0)] * 3)
    events, err = collect_until_error(lambda: provider(fake_openai), request())
    assert events == []
    assert err.code == code
    assert err.message == f"upstream says {status}"
    assert len(fake_openai.requests) == 3


def test_max_attempts_is_configurable(fake_openai):
    fake_openai.script(*[Reply(error=500)] * 5)
    _, err = collect_until_error(
        lambda: provider(fake_openai, retry=RetryPolicy(max_attempts=5, base_delay_s=0.001)), request()
    )
    assert err.code == "server_error"
    assert len(fake_openai.requests) == 5


def test_bad_request_is_invalid_prompt_without_retry(fake_openai):
    message = "This model's maximum context length is 8192 tokens. However, your messages resulted in 9001 tokens."
    fake_openai.script(Reply(error=400, message=message, error_code="context_length_exceeded"))
    _, err = collect_until_error(lambda: provider(fake_openai), request())
    assert err.code == "invalid_prompt"
    assert err.message == message
    assert len(fake_openai.requests) == 1


def test_auth_failure_is_not_retried(fake_openai):
    fake_openai.script(Reply(error=401, message="Incorrect API key provided"))
    _, err = collect_until_error(lambda: provider(fake_openai), request())
    assert err.code == "server_error"
    assert "Incorrect API key provided" in err.message
    assert len(fake_openai.requests) == 1


def test_no_retry_after_first_token(fake_openai):
    fake_openai.script(Reply(text="one two three four", drop_after=2), Reply(text="must not be requested"))
    events, err = collect_until_error(lambda: provider(fake_openai), request())
    assert text_of(events) == "one two"
    assert err.code == "server_error"
    assert len(fake_openai.requests) == 1
    assert fake_openai.pending == 1


def test_retry_after_header_is_honoured(fake_openai):
    fake_openai.script(Reply(error=429, retry_after=0.3), Reply(text="ok"))
    started = time.monotonic()
    events = collect(lambda: provider(fake_openai), request())
    assert time.monotonic() - started >= 0.3
    assert text_of(events) == "ok"


def test_retry_after_too_long_fails_at_once(fake_openai):
    fake_openai.script(Reply(error=429, retry_after=120), Reply(text="ok"))
    _, err = collect_until_error(lambda: provider(fake_openai), request())
    assert err.code == "rate_limit_exceeded"
    assert len(fake_openai.requests) == 1


def test_connection_refused_is_server_error():
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fake = SimpleNamespace(base_url=f"http://127.0.0.1:{port}/v1")
    _, err = collect_until_error(lambda: provider(fake), request())
    assert err.code == "server_error"
    assert "Could not connect" in err.message


def test_timeout_is_server_error(fake_openai):
    fake_openai.script(Reply(text="slow", ttft_s=1.0))
    make = lambda: provider(fake_openai, timeout_s=0.2, retry=RetryPolicy(max_attempts=1))  # noqa: E731
    _, err = collect_until_error(make, request())
    assert err.code == "server_error"
    assert "timed out" in err.message


def test_max_tokens_gives_length(fake_openai):
    fake_openai.script(Reply(text="a b c d e f g h"))
    events = collect(lambda: provider(fake_openai), request(max_tokens=3))
    assert text_of(events) == "a b c"
    assert events[-1] == Finish("length")
    # local servers get max_tokens; api.openai.com would get max_completion_tokens
    assert fake_openai.requests[0]["max_tokens"] == 3
    assert OpenAICompatProvider(api_key="k").max_tokens_param == "max_completion_tokens"


def test_request_options_mapping(fake_openai):
    schema = {"name": "answer", "schema": {"type": "object", "properties": {"x": {"type": "integer"}}}, "strict": True}
    fmt = {"type": "json_schema", "json_schema": schema}
    tools = [ToolSpec("lookup", "Look up", {"type": "object", "properties": {}}, strict=True)]
    fake_openai.script(Reply(text='{"x": 1}'), Reply(text="ok"), Reply(text="ok"))
    req = request(tools=tools, tool_choice="lookup", parallel_tool_calls=False, temperature=0.2, top_p=0.9)
    req.response_format = fmt
    assert text_of(collect(lambda: provider(fake_openai), req)) == '{"x": 1}'
    body = fake_openai.requests[0]
    assert body["response_format"] == fmt
    assert body["tool_choice"] == {"type": "function", "function": {"name": "lookup"}}
    assert body["parallel_tool_calls"] is False
    assert body["tools"][0]["function"]["strict"] is True
    assert body["temperature"] == 0.2 and body["top_p"] == 0.9

    collect(lambda: provider(fake_openai), request(tools=tools, tool_choice="required"))
    assert fake_openai.requests[1]["tool_choice"] == "required"
    collect(lambda: provider(fake_openai), request(response_format={"type": "json_object"}))
    assert fake_openai.requests[2]["response_format"] == {"type": "json_object"}
    assert "temperature" not in fake_openai.requests[2]


def test_messages_translated_faithfully(fake_openai):
    png = b"\x89PNG\r\n\x1a\nfake"
    messages = [
        ChatMessage("system", "You are terse."),
        ChatMessage(
            "user",
            [
                {"type": "text", "text": "What is in these?"},
                {"type": "image", "data": png, "mime_type": "image/png"},
                {"type": "image_url", "url": "https://example.com/cat.jpg"},
            ],
        ),
        ChatMessage(
            "assistant",
            None,
            tool_calls=[ToolCall("call_A1", "describe", '{"i": 0}'), ToolCall("call_B2", "describe", '{"i": 1}')],
        ),
        ChatMessage("tool", "a chart", tool_call_id="call_A1"),
        ChatMessage("tool", [{"type": "text", "text": "a cat"}], tool_call_id="call_B2"),
        ChatMessage("assistant", "A chart and a cat."),
        ChatMessage("user", [{"type": "text", "text": "Thanks"}], name="alice"),
    ]
    fake_openai.script(Reply(text="You're welcome."))
    collect(lambda: provider(fake_openai), ChatRequest(model="gpt-4o", messages=messages))
    sent = fake_openai.requests[0]["messages"]
    data_url = "data:image/png;base64," + base64.b64encode(png).decode()
    assert sent == [
        {"role": "system", "content": "You are terse."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these?"},
                {"type": "image_url", "image_url": {"url": data_url}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_A1", "type": "function", "function": {"name": "describe", "arguments": '{"i": 0}'}},
                {"id": "call_B2", "type": "function", "function": {"name": "describe", "arguments": '{"i": 1}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_A1", "content": "a chart"},
        {"role": "tool", "tool_call_id": "call_B2", "content": "a cat"},
        {"role": "assistant", "content": "A chart and a cat."},
        {"role": "user", "content": "Thanks", "name": "alice"},
    ]


def test_supports_images():
    p = OpenAICompatProvider(api_key="k", base_url="http://127.0.0.1:9/v1")
    assert p.supports_images("gpt-4o-mini") and p.supports_images("llava:13b")
    assert not p.supports_images("gpt-3.5-turbo") and not p.supports_images("llama3.1:8b")
    assert OpenAICompatProvider(api_key="k", base_url="http://x/v1", vision=True).supports_images("llama3.1")


def _chunk(tool_calls=None, content=None, finish=None, usage=None):
    calls = []
    for i, cid, name, args in tool_calls or []:
        call = {"function": {"name": name, "arguments": args}}
        if i is not None:
            call["index"] = i
        if cid is not None:
            call["id"] = cid
        calls.append(call)
    delta = {"content": content, "refusal": None, "tool_calls": calls or None}
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], "usage": usage}


def test_turn_tolerates_server_quirks():
    turn = _Turn(request())
    events = []
    # no index at all, whole call in one chunk; then a reused index 0 with a new id; finish "stop"
    events += turn.feed(_chunk([(None, "x1", "first", '{"a":1}')]))
    events += turn.feed(_chunk([(0, "call_2", "second", None)]))
    events += turn.feed(_chunk([(0, None, None, '{"b":')]))
    events += turn.feed(_chunk([(0, None, None, "2}")], finish="stop"))
    events += turn.finish()
    assert_well_formed(events)
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    assert [(s.index, s.id, s.name) for s in starts] == [(0, "call_x1", "first"), (1, "call_2", "second")]
    args = {i: "".join(e.arguments for e in events if isinstance(e, ToolCallDelta) and e.index == i) for i in (0, 1)}
    assert args == {0: '{"a":1}', 1: '{"b":2}'}
    assert events[-1] == Finish("tool_calls")


def test_turn_name_after_arguments_and_empty_arguments():
    turn = _Turn(request())
    events = turn.feed(_chunk([(0, "call_q", None, '{"k"')]))
    assert events == []  # no start before the name is known
    events += turn.feed(_chunk([(0, None, "late_name", ":1}"), (1, "call_r", "no_args", None)]))
    events += turn.finish()
    assert_well_formed(events)
    assert events[0] == ToolCallStart(0, "call_q", "late_name")
    assert ToolCallDelta(0, '{"k":1}') in events
    assert ToolCallDelta(1, "{}") in events
