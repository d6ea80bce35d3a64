"""AnthropicProvider against the FakeAnthropic test double over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from fakes import Reply, ToolCallSpec
from threadline.providers.anthropic import (
    JSON_TOOL_NAME,
    MISSING_RESULT,
    START_PLACEHOLDER,
    AnthropicProvider,
    from_anthropic_id,
    to_anthropic_id,
)
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

FAST_RETRY = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02)
MODEL = "claude-sonnet-4-6"


def provider(fake, **kwargs) -> AnthropicProvider:
    kwargs.setdefault("retry", FAST_RETRY)
    return AnthropicProvider(api_key="sk-ant-test", base_url=fake.base_url, **kwargs)


def request(text: str = "Hi there", **kwargs) -> ChatRequest:
    return ChatRequest(model=MODEL, messages=[ChatMessage("user", text)], **kwargs)


async def _run(make_provider, req: ChatRequest, sink: list) -> None:
    p = make_provider()
    try:
        async for event in p.stream(req):
            sink.append(event)
    finally:
        await p.aclose()


def collect(make_provider, req: ChatRequest) -> list:
    events: list = []
    asyncio.run(_run(make_provider, req, events))
    return events


def collect_until_error(make_provider, req: ChatRequest) -> tuple[list, ProviderError]:
    events: list = []
    with pytest.raises(ProviderError) as info:
        asyncio.run(_run(make_provider, req, events))
    return events, info.value


def text_of(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def assert_well_formed(events: list) -> None:
    assert isinstance(events[-2], Usage) and isinstance(events[-1], Finish)
    assert sum(isinstance(e, (Usage, Finish)) for e in events) == 2
    started: set[int] = set()
    for e in events:
        if isinstance(e, ToolCallStart):
            assert e.id.startswith("call_")
            started.add(e.index)
        if isinstance(e, ToolCallDelta):
            assert e.index in started


def test_text_streaming_with_usage(fake_anthropic):
    fake_anthropic.script(Reply(text="Bonjour tout le monde", chunks=4, prompt_tokens=21, completion_tokens=5))
    events = collect(lambda: provider(fake_anthropic), request())
    assert_well_formed(events)
    assert len([e for e in events if isinstance(e, TextDelta)]) == 4
    assert text_of(events) == "Bonjour tout le monde"
    assert events[-2:] == [Usage(21, 5), Finish("stop")]
    body = fake_anthropic.requests[0]
    assert body["stream"] is True
    assert body["max_tokens"] == 4096  # Anthropic requires it: the configured default
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi there"}]}]
    assert "tools" not in body and "system" not in body
    assert fake_anthropic.request_headers[0]["authorization"] == "Bearer sk-ant-test"  # this SDK sends keys as Bearer


def test_parallel_tool_use_streams_as_tool_calls(fake_anthropic):
    args0 = json.dumps({"city": "Paris", "unit": "celsius"})
    args1 = json.dumps({"tz": "Asia/Tokyo"})
    fake_anthropic.script(
        Reply(
            text="Let me check.",
            tool_calls=[
                ToolCallSpec("get_weather", args0, id="toolu_01AAA", chunks=4),
                ToolCallSpec("get_time", args1, id="toolu_01BBB", chunks=2),
            ],
        )
    )
    tools = [ToolSpec("get_weather", "Weather", {"type": "object"}), ToolSpec("get_time", None, None)]
    events = collect(lambda: provider(fake_anthropic), request(tools=tools))
    assert_well_formed(events)
    assert text_of(events) == "Let me check."
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    assert starts == [ToolCallStart(0, "call_01AAA", "get_weather"), ToolCallStart(1, "call_01BBB", "get_time")]
    for index, expected, pieces in ((0, args0, 4), (1, args1, 2)):
        deltas = [e.arguments for e in events if isinstance(e, ToolCallDelta) and e.index == index]
        assert len(deltas) == pieces and "".join(deltas) == expected
    assert events[-1] == Finish("tool_calls")
    body = fake_anthropic.requests[0]
    assert body["tools"] == [
        {"name": "get_weather", "input_schema": {"type": "object"}, "description": "Weather"},
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert body["tool_choice"] == {"type": "auto"}


def test_tool_without_arguments_gets_empty_object(fake_anthropic):
    fake_anthropic.script(Reply(tool_calls=[ToolCallSpec("ping", "", id="toolu_X")]))
    events = collect(lambda: provider(fake_anthropic), request(tools=[ToolSpec("ping", None, None)]))
    assert [e for e in events if isinstance(e, ToolCallDelta)] == [ToolCallDelta(0, "{}")]


def test_ids_swap_prefix_both_ways():
    assert from_anthropic_id("toolu_01XyZ") == "call_01XyZ"
    assert to_anthropic_id("call_01XyZ") == "toolu_01XyZ"
    assert to_anthropic_id(from_anthropic_id("toolu_abc")) == "toolu_abc"
    assert to_anthropic_id("toolu_keep") == "toolu_keep"
    assert to_anthropic_id("weird.id:1") == "toolu_weird_id_1"
    assert from_anthropic_id("other-7").startswith("call_")
    assert from_anthropic_id(None).startswith("call_")


def test_conversation_translation(fake_anthropic):
    png = b"\x89PNG fake"
    messages = [
        ChatMessage("system", "You are terse."),
        ChatMessage("system", "Answer in French."),
        ChatMessage(
            "user",
            [
                {"type": "text", "text": "Look:"},
                {"type": "image", "data": png, "mime_type": "image/png"},
                {"type": "image_url", "url": "data:image/jpeg;base64,QUJD"},
                {"type": "image_url", "url": "https://example.com/a.png"},
            ],
        ),
        ChatMessage(
            "assistant",
            "Checking both.",
            tool_calls=[ToolCall("call_01A", "lookup", '{"q": "a"}'), ToolCall("call_01B", "lookup", '{"q": "b"}')],
        ),
        ChatMessage("tool", "result a", tool_call_id="call_01A"),
        ChatMessage("tool", "result b", tool_call_id="call_01B"),
        ChatMessage("user", "And now?"),
    ]
    fake_anthropic.script(Reply(text="Voilà."))
    req = ChatRequest(model=MODEL, messages=messages, temperature=0.3, max_tokens=500)
    collect(lambda: provider(fake_anthropic), req)
    body = fake_anthropic.requests[0]
    assert body["system"] == "You are terse.\n\nAnswer in French."
    assert body["max_tokens"] == 500
    assert body["temperature"] == 0.3
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look:"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(png).decode()},
                },
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "QUJD"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking both."},
                {"type": "tool_use", "id": "toolu_01A", "name": "lookup", "input": {"q": "a"}},
                {"type": "tool_use", "id": "toolu_01B", "name": "lookup", "input": {"q": "b"}},
            ],
        },
        {
            "role": "user",  # both results and the next user text share one user turn
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "result a"},
                {"type": "tool_result", "tool_use_id": "toolu_01B", "content": "result b"},
                {"type": "text", "text": "And now?"},
            ],
        },
    ]


def test_conversation_repairs():
    p = AnthropicProvider(api_key="k", base_url="http://127.0.0.1:9")
    messages = [
        ChatMessage("assistant", "Hello, how can I help?"),
        ChatMessage("user", "Do two things."),
        ChatMessage("assistant", None, tool_calls=[ToolCall("call_1", "a", "{}"), ToolCall("call_2", "b", "{}")]),
        ChatMessage("tool", "done a", tool_call_id="call_1"),  # call_2's result is missing
        ChatMessage("tool", "stray", tool_call_id="call_zzz"),  # no matching tool_use
    ]
    body, _ = p.build_body(ChatRequest(model=MODEL, messages=messages))
    turns = body["messages"]
    assert turns[0] == {"role": "user", "content": [{"type": "text", "text": START_PLACEHOLDER}]}
    assert [t["role"] for t in turns] == ["user", "assistant", "user", "assistant", "user"]
    results = turns[4]["content"]
    assert results[0] == {"type": "tool_result", "tool_use_id": "toolu_2", "content": MISSING_RESULT}
    assert results[1] == {"type": "tool_result", "tool_use_id": "toolu_1", "content": "done a"}
    assert results[2] == {"type": "text", "text": "Result of tool call toolu_zzz: stray"}


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", True, {"type": "auto"}),
        ("required", True, {"type": "any"}),
        ("none", True, {"type": "none"}),
        ("lookup", True, {"type": "tool", "name": "lookup"}),
        ("auto", False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
    ],
)
def test_tool_choice_mapping(choice, parallel, expected):
    p = AnthropicProvider(api_key="k", base_url="http://127.0.0.1:9")
    req = request(tools=[ToolSpec("lookup", None, None)], tool_choice=choice, parallel_tool_calls=parallel)
    body, _ = p.build_body(req)
    assert body["tool_choice"] == expected


def test_json_schema_via_forced_tool(fake_anthropic):
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "result", "schema": schema, "strict": True}}
    answer = '{"answer": 42}'
    fake_anthropic.script(Reply(tool_calls=[ToolCallSpec(JSON_TOOL_NAME, answer, chunks=3)]))
    events = collect(lambda: provider(fake_anthropic), request(response_format=fmt))
    assert_well_formed(events)
    assert not any(isinstance(e, ToolCallStart) for e in events)
    assert len([e for e in events if isinstance(e, TextDelta)]) == 3  # streamed, not buffered
    assert json.loads(text_of(events)) == {"answer": 42}
    assert events[-1] == Finish("stop")
    body = fake_anthropic.requests[0]
    assert body["tools"][0]["name"] == JSON_TOOL_NAME and body["tools"][0]["input_schema"] == schema
    assert body["tool_choice"] == {"type": "tool", "name": JSON_TOOL_NAME}


def test_json_object_with_tools_forces_any_tool(fake_anthropic):
    fake_anthropic.script(Reply(tool_calls=[ToolCallSpec("lookup", '{"q": "x"}')]))
    req = request(tools=[ToolSpec("lookup", None, None)], response_format={"type": "json_object"})
    events = collect(lambda: provider(fake_anthropic), req)
    # a real tool call stays a tool call
    assert [e for e in events if isinstance(e, ToolCallStart)][0].name == "lookup"
    assert events[-1] == Finish("tool_calls")
    body = fake_anthropic.requests[0]
    assert [t["name"] for t in body["tools"]] == ["lookup", JSON_TOOL_NAME]
    assert body["tools"][1]["input_schema"] == {"type": "object"}
    assert body["tool_choice"] == {"type": "any"}


def test_json_schema_non_object_root_is_wrapped(fake_anthropic):
    fmt = {"type": "json_schema", "json_schema": {"name": "list", "schema": {"type": "array", "items": {}}}}
    fake_anthropic.script(Reply(tool_calls=[ToolCallSpec(JSON_TOOL_NAME, '{"value": [1, 2, 3]}')]))
    events = collect(lambda: provider(fake_anthropic), request(response_format=fmt))
    assert json.loads(text_of(events)) == [1, 2, 3]
    schema = fake_anthropic.requests[0]["tools"][0]["input_schema"]
    assert schema["properties"]["value"] == {"type": "array", "items": {}}


def test_usage_absent_is_counted_locally(fake_anthropic):
    text = "Pack my box with five dozen liquor jugs"
    fake_anthropic.script(Reply(text=text, usage=False))
    events = collect(lambda: provider(fake_anthropic), request("Pangram please"))
    assert_well_formed(events)
    assert events[-2].completion_tokens == count_tokens(text, MODEL)
    assert events[-2].prompt_tokens >= count_tokens("Pangram please", MODEL)


def test_max_tokens_stop_reason_is_length(fake_anthropic):
    fake_anthropic.script(Reply(text="a b c d e f"))
    events = collect(lambda: provider(fake_anthropic), request(max_tokens=2))
    assert text_of(events) == "a b"
    assert events[-1] == Finish("length")


def test_retries_then_success(fake_anthropic):
    fake_anthropic.script(Reply(error=529, message="Overloaded"), Reply(error=429, retry_after=0), Reply(text="ok"))
    events = collect(lambda: provider(fake_anthropic), request())
    assert text_of(events) == "ok"
    assert len(fake_anthropic.requests) == 3


@pytest.mark.parametrize(
    ("status", "code", "attempts"),
    [
        (529, "server_error", 3),
        (500, "server_error", 3),
        (429, "rate_limit_exceeded", 3),
        (400, "invalid_prompt", 1),
        (413, "invalid_prompt", 1),
        (401, "server_error", 1),
    ],
)
def test_error_mapping(fake_anthropic, status, code, attempts):
    fake_anthropic.script(*[Reply(error=status, message=f"upstream {status}", retry_after=0)] * 3)
    events, err = collect_until_error(lambda: provider(fake_anthropic), request())
    assert events == []
    assert err.code == code
    assert f"upstream {status}" in err.message
    assert len(fake_anthropic.requests) == attempts


def test_no_retry_after_first_token(fake_anthropic):
    fake_anthropic.script(Reply(text="one two three", drop_after=1), Reply(text="unused"))
    events, err = collect_until_error(lambda: provider(fake_anthropic), request())
    assert text_of(events) == "one"
    assert err.code == "server_error"
    assert len(fake_anthropic.requests) == 1 and fake_anthropic.pending == 1


def test_supports_images():
    p = AnthropicProvider(api_key="k", base_url="http://127.0.0.1:9")
    assert p.supports_images("claude-3-5-sonnet-latest") and p.supports_images("claude-sonnet-4-5")
