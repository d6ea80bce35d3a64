"""The official Python SDK's Responses surface against threadline, written to run with openai 3.x (.venv) and the
newest 1.x (.venv-sdk1r): create, stream with its event helpers, a function call round trip through
`previous_response_id`, and a conversation carried across responses. Every JSON body is validated against the spec."""

from __future__ import annotations

import json

from fakes import Reply, ToolCallSpec

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _chat_texts(body: dict) -> str:
    return json.dumps(body.get("messages", []))


def test_create(responses_api, client, fake_llm):
    fake_llm.script(Reply(text="Hello there, friend.", chunks=3))
    r = client.responses.create(model="gpt-4o", input="Say hello in exactly 3 words.", instructions="Be terse.")
    assert r.object == "response" and r.id.startswith("resp_") and r.status == "completed"
    assert r.output_text == "Hello there, friend."
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    assert client.responses.retrieve(r.id).output_text == "Hello there, friend."
    assert "Be terse." in _chat_texts(fake_llm.requests[0])


def test_stream_event_helpers(responses_api, client, fake_llm):
    fake_llm.script(Reply(text="1, 2, 3, 4, 5", chunks=5))
    deltas: list[str] = []
    types: list[str] = []
    numbers: list[int] = []
    with client.responses.stream(model="gpt-4o", input="Count from 1 to 5.") as stream:
        for event in stream:
            types.append(event.type)
            numbers.append(event.sequence_number)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert "".join(deltas) == "1, 2, 3, 4, 5" and final.output_text == "1, 2, 3, 4, 5"
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)


def test_function_call_round_trip_with_previous_response_id(responses_api, client, fake_llm):
    fake_llm.script(
        Reply(tool_calls=[ToolCallSpec("get_weather", json.dumps({"city": "Paris"}))]),
        Reply(text="It is sunny in Paris."),
    )
    first = client.responses.create(model="gpt-4o", input="Weather in Paris?", tools=[WEATHER])
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather" and json.loads(calls[0].arguments) == {"city": "Paris"}
    second = client.responses.create(
        model="gpt-4o",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny, 24 C"}],
        tools=[WEATHER],
    )
    assert second.output_text == "It is sunny in Paris." and second.previous_response_id == first.id
    replay = _chat_texts(fake_llm.requests[1])
    assert "Weather in Paris?" in replay and "sunny, 24 C" in replay


def test_conversation_across_responses(responses_api, client, fake_llm):
    conversation = client.conversations.create()
    fake_llm.script(Reply(text="Noted: papaya."), Reply(text="The code word is papaya."))
    client.responses.create(model="gpt-4o", conversation=conversation.id, input="The code word is papaya.")
    r = client.responses.create(model="gpt-4o", conversation=conversation.id, input="What is the code word?")
    assert r.output_text == "The code word is papaya."
    assert "The code word is papaya." in _chat_texts(fake_llm.requests[1])
    items = client.conversations.items.list(conversation_id=conversation.id, order="asc").data
    assert [getattr(i, "role", None) for i in items] == ["user", "assistant", "user", "assistant"]
