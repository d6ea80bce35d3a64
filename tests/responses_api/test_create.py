"""POST /v1/responses through the official SDK: text (string and item input, instructions), streaming with the
SDK's helpers and the contract's canonical event orders (§3.3 a, b, f, g), structured output, function-call round
trips over previous_response_id and conversations, and the request errors of contract §4.2. Every response object
is checked against the spec by the client's validator; every stream event against ResponseStreamEvent."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from fakes import Reply, ToolCallSpec
from fakes.fake_openai import FakeOpenAI
from support.schemas import spec, validate
from support.server import ServerHandle
from threadline.store import Store
from threadline.store import responses as response_rows

MODEL = "gpt-4o-mini"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def event_schemas() -> dict[str, str]:
    """Stream event type -> the spec's schema name for it (the members of ResponseStreamEvent)."""
    out = {}
    for member in spec()["components"]["schemas"]["ResponseStreamEvent"]["anyOf"]:
        name = member["$ref"].rsplit("/", 1)[-1]
        kind = spec()["components"]["schemas"][name]["properties"]["type"]
        for value in kind.get("enum") or [kind.get("const")]:
            out[value] = name
    return out


def check_event(event: dict[str, Any]) -> None:
    validate(event_schemas()[event["type"]], event)


def sse_events(http: httpx.Client, body: dict[str, Any], path: str = "/responses") -> tuple[list[dict], bool]:
    """POST (or GET with `body` None) a streaming request; its events (each checked against the spec, each
    `event:` line equal to its `type`) and whether the stream ended with `data: [DONE]`."""
    events: list[dict] = []
    done = False
    method, kwargs = ("POST", {"json": body}) if body is not None else ("GET", {})
    with http.stream(method, path, **kwargs) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data = line[len("data: ") :]
                if data == "[DONE]":
                    done = True
                    continue
                event = json.loads(data)
                assert event["type"] == name
                check_event(event)
                events.append(event)
    return events, done


def check_sequence(events: list[dict]) -> None:
    first = events[0]["sequence_number"]
    assert [e["sequence_number"] for e in events] == list(range(first, first + len(events)))


def test_text_string_input(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(text="Hello there friend"))
    response = client.responses.create(model=MODEL, input="Say hello", instructions="Be brief.")
    assert response.status == "completed"
    assert response.output_text == "Hello there friend"
    assert response.instructions == "Be brief."
    assert response.usage is not None and response.usage.total_tokens > 0
    assert response.completed_at is not None
    sent = fake_llm.requests[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "Be brief."}
    assert sent[-1]["role"] == "user" and "Say hello" in json.dumps(sent[-1]["content"])
    again = client.responses.retrieve(response.id)
    assert again.output_text == "Hello there friend"
    items = client.responses.input_items.list(response.id)
    assert [i.type for i in items.data] == ["message"]


def test_item_input_and_roles(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(text="Paris"))
    response = client.responses.create(
        model=MODEL,
        input=[
            {"role": "developer", "content": "Answer with one word."},
            {"role": "user", "content": [{"type": "input_text", "text": "Capital of France?"}]},
            {"role": "assistant", "content": "Which country?"},
            {"type": "message", "role": "user", "content": "France."},
        ],
        temperature=0.3,
        top_p=0.9,
        metadata={"k": "v"},
    )
    assert response.output_text == "Paris"
    assert response.metadata == {"k": "v"} and response.temperature == 0.3 and response.top_p == 0.9
    body = fake_llm.requests[-1]
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert body["temperature"] == 0.3 and body["top_p"] == 0.9


def test_store_false_is_not_retrievable(client: openai.OpenAI, fake_llm: FakeOpenAI, server: ServerHandle) -> None:
    fake_llm.script(Reply(text="ephemeral"))
    response = client.responses.create(model=MODEL, input="hi", store=False)
    assert response.output_text == "ephemeral" and response.store is False
    store = Store(server.database_url)
    try:
        with store.read() as conn:
            assert response_rows.fetch(conn, response.id) is None  # not kept at all
    finally:
        store.close()
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=MODEL, input="more", previous_response_id=response.id)
    assert err.value.code == "previous_response_not_found"


def test_stream_text_canonical_order(http: httpx.Client, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(text="one two three", chunks=3))
    events, done = sse_events(http, {"model": MODEL, "input": "count", "stream": True})
    assert done
    check_sequence(events)
    assert events[0]["sequence_number"] == 0
    kinds = [e["type"] for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["usage"] is None
    item_id = events[2]["item"]["id"]
    assert all(e["item_id"] == item_id for e in events[3:9])
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == "one two three"
    final = events[-1]["response"]
    assert final["status"] == "completed" and final["output"][0]["content"][0]["text"] == "one two three"
    assert final["usage"]["total_tokens"] > 0


def test_sdk_stream_helpers(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(text="alpha beta gamma", chunks=3))
    snapshots = []
    with client.responses.stream(model=MODEL, input="go") as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                snapshots.append(event.snapshot)
        final = stream.get_final_response()
    assert snapshots[-1] == "alpha beta gamma"
    assert final.output_text == "alpha beta gamma"
    assert client.responses.retrieve(final.id).status == "completed"


class City(BaseModel):
    name: str
    population: int


def test_parse_text_format(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(text='{"name": "Oslo", "population": 700000}'))
    parsed = client.responses.parse(model=MODEL, input="A city", text_format=City)
    assert parsed.output_parsed == City(name="Oslo", population=700000)
    fmt = fake_llm.requests[-1]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "City"
    assert fmt["json_schema"]["schema"]["properties"]["population"]["type"] == "integer"
    assert parsed.text.format.type == "json_schema"


def test_json_object_format(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(text='{"a": 1}'))
    response = client.responses.create(model=MODEL, input="json please", text={"format": {"type": "json_object"}})
    assert json.loads(response.output_text) == {"a": 1}
    assert fake_llm.requests[-1]["response_format"] == {"type": "json_object"}


def test_function_call_round_trip_previous_response(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(
        Reply(tool_calls=[ToolCallSpec("get_weather", '{"city":"Oslo"}', id="call_oslo1")]),
        Reply(text="It is sunny in Oslo."),
    )
    first = client.responses.create(model=MODEL, input="Weather in Oslo?", tools=[WEATHER])
    assert first.status == "completed"
    [call] = first.output
    assert call.type == "function_call" and call.call_id == "call_oslo1" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Oslo"} and call.id.startswith("fc_")
    assert first.tools[0].strict is True  # the echo fills strict in
    second = client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": "call_oslo1", "output": "sunny, 21C"}],
        tools=[WEATHER],
    )
    assert second.output_text == "It is sunny in Oslo." and second.previous_response_id == first.id
    messages = fake_llm.requests[-1]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["id"] == "call_oslo1"
    assert messages[2] == {"role": "tool", "content": "sunny, 21C", "tool_call_id": "call_oslo1"}


def test_stream_function_call_canonical_order(http: httpx.Client, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(tool_calls=[ToolCallSpec("get_weather", '{"city":"Rome"}', id="call_rome", chunks=3)]))
    events, done = sse_events(http, {"model": MODEL, "input": "Rome?", "tools": [WEATHER], "stream": True})
    assert done
    check_sequence(events)
    kinds = [e["type"] for e in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert kinds[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert set(kinds[3:-3]) == {"response.function_call_arguments.delta"}
    added = events[2]["item"]
    assert added["arguments"] == "" and added["call_id"] == "call_rome" and added["status"] == "in_progress"
    assert all(e["item_id"] == added["id"] for e in events[3:-2])
    assert events[-3]["arguments"] == '{"city":"Rome"}' and events[-3]["name"] == "get_weather"
    assert events[-1]["response"]["output"][0]["arguments"] == '{"city":"Rome"}'


def test_parallel_calls_and_tool_choice(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(
        Reply(tool_calls=[ToolCallSpec("get_weather", '{"city":"A"}'), ToolCallSpec("get_weather", '{"city":"B"}')])
    )
    response = client.responses.create(
        model=MODEL,
        input="A and B",
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
        parallel_tool_calls=False,
    )
    assert [o.type for o in response.output] == ["function_call"]  # one call per turn without parallel calls
    body = fake_llm.requests[-1]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    fake_llm.script(Reply(text="none"))
    client.responses.create(model=MODEL, input="x", tools=[WEATHER], tool_choice="none")
    assert "tools" not in fake_llm.requests[-1] or not fake_llm.requests[-1]["tools"]


def test_missing_tool_output(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(tool_calls=[ToolCallSpec("get_weather", '{"city":"Oslo"}', id="call_open")]))
    first = client.responses.create(model=MODEL, input="Oslo?", tools=[WEATHER])
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=MODEL, previous_response_id=first.id, input="never mind")
    assert err.value.body["message"] == "No tool output found for function call call_open."
    assert err.value.body["param"] == "input"
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(
            model=MODEL,
            previous_response_id=first.id,
            input=[
                {"type": "function_call_output", "call_id": "call_open", "output": "x"},
                {"type": "function_call_output", "call_id": "call_nope", "output": "y"},
            ],
        )
    assert err.value.body["message"] == "No tool call found for function call output with call_id call_nope."


def test_previous_and_conversation_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=MODEL, input="x", previous_response_id="resp_missing")
    assert err.value.code == "previous_response_not_found"
    assert err.value.body["message"] == "Previous response with id 'resp_missing' not found."
    conv = client.conversations.create()
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=MODEL, input="x", previous_response_id="resp_missing", conversation=conv.id)
    assert "Mutually exclusive parameters: 'previous_response_id' and 'conversation'" in err.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=MODEL, input="x", conversation="conv_doesnotexist")


def test_max_output_tokens_incomplete(http: httpx.Client, client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(text="a long answer cut", chunks=4, finish_reason="length", completion_tokens=16))
    events, done = sse_events(http, {"model": MODEL, "input": "x", "max_output_tokens": 16, "stream": True})
    assert done
    assert [e["type"] for e in events][-2:] == ["response.output_item.done", "response.incomplete"]
    assert events[-2]["item"]["status"] == "incomplete"
    final = events[-1]["response"]
    assert final["status"] == "incomplete" and final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["usage"]["output_tokens"] == 16
    assert fake_llm.requests[-1]["max_tokens"] == 16 or fake_llm.requests[-1].get("max_completion_tokens") == 16
    assert client.responses.retrieve(final["id"]).status == "incomplete"


def test_provider_failure_mid_stream(http: httpx.Client, client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(*[Reply(error=429, message="Slow down.", retry_after=0)] * 5)
    events, done = sse_events(http, {"model": MODEL, "input": "x", "stream": True})
    assert done
    kinds = [e["type"] for e in events]
    assert kinds == ["response.created", "response.in_progress", "error", "response.failed"]
    check_sequence(events)
    error = events[2]
    assert error["error"]["message"] and error["message"] == error["error"]["message"]
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["message"]
    assert failed["usage"] is not None
    with pytest.raises(openai.APIError):  # the SDK raises on the nested error event
        with client.responses.stream(model=MODEL, input="x") as stream:
            fake_llm.script(*[Reply(error=500, message="boom")] * 5)
            for _ in stream:
                pass


def test_sync_provider_failure_is_failed_response(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(*[Reply(error=500, message="upstream broke")] * 5)
    response = client.responses.create(model=MODEL, input="x")
    assert response.status == "failed" and response.error is not None
    assert response.error.code == "server_error"


def test_context_length_exceeded(client: openai.OpenAI, server: ServerHandle) -> None:
    huge = "word " * 200_000
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=MODEL, input=huge)
    assert err.value.code == "context_length_exceeded"
    assert err.value.body["param"] == "input"


def test_provider_drops_mid_reply(http: httpx.Client, client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(*[Reply(text="one two three four five six", chunks=6, drop_after=3)] * 5)
    events, done = sse_events(http, {"model": MODEL, "input": "x", "stream": True})
    assert done
    check_sequence(events)
    kinds = [e["type"] for e in events]
    assert "response.output_text.delta" in kinds
    assert kinds[-2:] == ["error", "response.failed"]
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
    assert [item["status"] for item in failed["output"]] == ["incomplete"]
    assert client.responses.retrieve(failed["id"]).status == "failed"


def test_agents_sdk_requests(http: httpx.Client, fake_llm: FakeOpenAI) -> None:
    # the bodies the Agents SDK sends (contract §1.4): include [], strict tools with an empty description, the
    # instructions re-sent on the tool turn, whose input is only the function_call_output
    tool = {**WEATHER, "description": "", "strict": True}
    fake_llm.script(
        Reply(tool_calls=[ToolCallSpec("get_weather", '{"city":"Oslo"}', id="call_agents")]), Reply(text="Done.")
    )
    events, done = sse_events(
        http,
        {
            "model": MODEL,
            "stream": True,
            "include": [],
            "input": [{"content": "Weather?", "role": "user"}],
            "instructions": "You are an agent.",
            "tools": [tool],
        },
    )
    first = events[-1]["response"]
    assert done and first["status"] == "completed" and first["output"][0]["call_id"] == "call_agents"
    second = http.post(
        "/responses",
        json={
            "model": MODEL,
            "stream": False,
            "include": [],
            "previous_response_id": first["id"],
            "input": [{"call_id": "call_agents", "output": "sunny", "type": "function_call_output"}],
            "instructions": "You are an agent.",
            "tools": [tool],
        },
    )
    assert second.status_code == 200, second.text
    assert second.json()["output"][0]["content"][0]["text"] == "Done."
    sent = fake_llm.requests[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "You are an agent."}
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool"]


def test_input_image_by_file_id(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    from conversations.test_conversations import PNG  # noqa: PLC0415 - one shared test image

    image = client.files.create(file=("dot.png", PNG), purpose="vision").id
    fake_llm.script(Reply(text="A dot."))
    content = [{"type": "input_text", "text": "What is this?"}, {"type": "input_image", "file_id": image}]
    response = client.responses.create(model=MODEL, input=[{"role": "user", "content": content}])
    assert response.output_text == "A dot."
    parts = fake_llm.requests[-1]["messages"][-1]["content"]
    assert parts[0] == {"type": "text", "text": "What is this?"}
    assert parts[1]["type"] == "image_url" and parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
