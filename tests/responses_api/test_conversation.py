"""Responses on conversations, and the bridge between the two APIs on one store (contract §5.4, §7): a response's
input and output items are appended to the conversation's log; a function-call round trip over a conversation;
the one lock of a thread and its conversation; a thread continued through `responses.create(conversation=...)`
and read through both APIs; an Assistants run on a `conv_` id; an Assistants run's tool calls as items."""

from __future__ import annotations

import json
import time

import openai
import pytest

from fakes import Reply, ToolCallSpec
from fakes.fake_openai import FakeOpenAI
from support.schemas import validate

from .test_create import MODEL, WEATHER


def items_asc(client: openai.OpenAI, conv_id: str) -> list:
    items = list(client.conversations.items.list(conv_id, order="asc", limit=100))
    for item in items:
        validate("ConversationItem", item.model_dump(mode="json", exclude_unset=True))
    return items


def test_function_call_round_trip_on_conversation(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    conv = client.conversations.create(items=[{"role": "user", "content": "I live in Oslo."}])
    fake_llm.script(
        Reply(tool_calls=[ToolCallSpec("get_weather", '{"city":"Oslo"}', id="call_conv1")]),
        Reply(text="Sunny in Oslo."),
    )
    first = client.responses.create(model=MODEL, conversation=conv.id, input="Weather here?", tools=[WEATHER])
    assert first.conversation is not None and first.conversation.id == conv.id
    assert [m["role"] for m in fake_llm.requests[-1]["messages"]] == ["user", "user"]
    items = items_asc(client, conv.id)
    assert [i.type for i in items] == ["message", "message", "function_call"]
    assert items[2].call_id == "call_conv1" and items[2].id == first.output[0].id
    assert items[1].id == client.responses.input_items.list(first.id).data[0].id
    second = client.responses.create(
        model=MODEL,
        conversation=conv.id,
        input=[{"type": "function_call_output", "call_id": "call_conv1", "output": "sunny"}],
        tools=[WEATHER],
    )
    assert second.output_text == "Sunny in Oslo."
    sent = fake_llm.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "user", "assistant", "tool"]
    items = items_asc(client, conv.id)
    assert [i.type for i in items] == ["message", "message", "function_call", "function_call_output", "message"]
    assert items[-1].role == "assistant" and items[-1].content[0].text == "Sunny in Oslo."
    # an output answering no call of the conversation
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(
            model=MODEL, conversation=conv.id, input=[{"type": "function_call_output", "call_id": "x", "output": "y"}]
        )
    assert err.value.body["message"] == "No tool call found for function call output with call_id x."


def test_conversation_locked_by_response(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    conv = client.conversations.create()
    fake_llm.script(Reply(text="slow " * 20, chunks=20, tokens_per_s=10))
    created = client.responses.create(model=MODEL, conversation=conv.id, input="long", background=True)
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=MODEL, conversation=conv.id, input="again")
    assert err.value.code == "conversation_locked" and err.value.body["param"] == "conversation"
    with pytest.raises(openai.BadRequestError) as err:
        client.conversations.items.create(conv.id, items=[{"role": "user", "content": "x"}])
    assert err.value.code == "conversation_locked"
    client.responses.cancel(created.id)
    client.conversations.items.create(conv.id, items=[{"role": "user", "content": "free again"}])
    # a cancelled response appends nothing
    assert [i.type for i in items_asc(client, conv.id)] == ["message"]


def test_thread_continued_through_responses(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    assistant = client.beta.assistants.create(model=MODEL, instructions="Be nice.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi, I am Ada."}])
    fake_llm.script(Reply(text="Hello Ada."), Reply(text="You are Ada."))
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20)
    assert run.status == "completed"
    conv_id = "conv_" + thread.id.removeprefix("thread_")
    response = client.responses.create(model=MODEL, conversation=conv_id, input="Who am I?")
    assert response.output_text == "You are Ada."
    sent = fake_llm.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    messages = client.beta.threads.messages.list(thread_id=thread.id, order="asc").data
    assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[-1].content[0].text.value == "You are Ada." and messages[-1].run_id is None
    items = items_asc(client, conv_id)
    assert [i.content[0].text for i in items] == ["Hi, I am Ada.", "Hello Ada.", "Who am I?", "You are Ada."]


def test_run_on_conversation_after_response(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    conv = client.conversations.create()
    fake_llm.script(Reply(text="Noted: blue."), Reply(text="Blue."))
    client.responses.create(model=MODEL, conversation=conv.id, input="My colour is blue.")
    assistant = client.beta.assistants.create(model=MODEL)
    client.beta.threads.messages.create(thread_id=conv.id, role="user", content="What is my colour?")
    run = client.beta.threads.runs.create_and_poll(thread_id=conv.id, assistant_id=assistant.id, poll_interval_ms=20)
    assert run.status == "completed"
    sent = fake_llm.requests[-1]["messages"]
    assert [m["content"] for m in sent if m["role"] != "system"] == [
        "My colour is blue.",
        "Noted: blue.",
        "What is my colour?",
    ]


def test_run_tool_calls_become_items(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER["parameters"]}}
    assistant = client.beta.assistants.create(model=MODEL, tools=[tool])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather in Oslo and Rome?"}])
    fake_llm.script(
        Reply(
            tool_calls=[
                ToolCallSpec("get_weather", '{"city":"Oslo"}', id="call_run_a"),
                ToolCallSpec("get_weather", '{"city":"Rome"}', id="call_run_b"),
            ]
        ),
        Reply(text="Oslo sunny, Rome rainy."),
        Reply(text="Rome."),
    )
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20)
    assert run.status == "requires_action"
    conv_id = "conv_" + thread.id.removeprefix("thread_")
    assert [i.type for i in items_asc(client, conv_id)] == ["message"]  # no unanswered call in the log
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[
            {"tool_call_id": "call_run_a", "output": "sunny"},
            {"tool_call_id": "call_run_b", "output": "rainy"},
        ],
        poll_interval_ms=20,
    )
    assert run.status == "completed"
    items = items_asc(client, conv_id)
    assert [i.type for i in items] == [
        "message",
        "function_call",
        "function_call",
        "function_call_output",
        "function_call_output",
        "message",
    ]
    assert [i.call_id for i in items[1:5]] == ["call_run_a", "call_run_b", "call_run_a", "call_run_b"]
    assert json.loads(items[1].arguments) == {"city": "Oslo"} and items[3].output == "sunny"
    # a Responses turn on the thread sees the run's tool activity as tool calls and outputs
    response = client.responses.create(model=MODEL, conversation=conv_id, input="Which is rainy?", tools=[WEATHER])
    assert response.output_text == "Rome."
    roles = [m["role"] for m in fake_llm.requests[-1]["messages"]]
    assert roles == ["user", "assistant", "tool", "tool", "assistant", "user"]
    # the Assistants message list still shows only messages
    assert len(client.beta.threads.messages.list(thread_id=thread.id).data) == 4


def test_store_false_leaves_conversation_alone(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    conv = client.conversations.create()
    fake_llm.script(Reply(text="not kept"))
    client.responses.create(model=MODEL, conversation=conv.id, input="x", store=False)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and items_asc(client, conv.id):
        time.sleep(0.05)
    assert items_asc(client, conv.id) == []


def test_truncation_on_a_long_conversation(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    # an 8k-context model: `disabled` (the default) refuses the request, `auto` drops the oldest items
    items = [{"role": "user", "content": f"{i} " + "filler " * 900} for i in range(12)]
    conv = client.conversations.create(items=items[:10])
    client.conversations.items.create(conv.id, items=items[10:])
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="llama3", conversation=conv.id, input="the final question")
    assert err.value.code == "context_length_exceeded"
    fake_llm.script(Reply(text="answered"))
    response = client.responses.create(
        model="llama3", conversation=conv.id, input="the final question", truncation="auto"
    )
    assert response.output_text == "answered" and response.truncation == "auto"
    sent = fake_llm.requests[-1]["messages"]
    assert sent[-1]["content"] == "the final question"
    assert 1 < len(sent) < 12 and sent[0]["content"].startswith(str(12 - len(sent) + 1))
