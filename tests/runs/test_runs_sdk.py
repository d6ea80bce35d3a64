"""Runs through every SDK helper, against the scripted fake LLM."""

from __future__ import annotations

import httpx
import openai
from openai import AssistantEventHandler

from fakes import Reply, ToolCallSpec


def test_create_and_poll_text(client, assistant, fake_llm):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Say hello"}])
    fake_llm.script(Reply(text="Hello from the model", chunks=4, prompt_tokens=11, completion_tokens=4))
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20)
    assert run.status == "completed"
    assert run.completed_at is not None and run.expires_at is None and run.started_at is not None
    assert run.usage.prompt_tokens == 11 and run.usage.completion_tokens == 4 and run.usage.total_tokens == 15
    assert run.instructions == "You are a test assistant."
    messages = client.beta.threads.messages.list(thread_id=thread.id)
    assert messages.data[0].role == "assistant"
    assert messages.data[0].content[0].text.value == "Hello from the model"
    assert messages.data[0].run_id == run.id and messages.data[0].assistant_id == assistant.id
    by_run = client.beta.threads.messages.list(thread_id=thread.id, run_id=run.id)
    assert [m.id for m in by_run.data] == [messages.data[0].id]
    sent = fake_llm.requests[-1]
    assert sent["messages"][0] == {"role": "system", "content": "You are a test assistant."}
    assert sent["messages"][-1]["content"] == "Say hello"
    assert sent["stream"] is True
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id)
    assert [s.type for s in steps.data] == ["message_creation"]
    assert steps.data[0].status == "completed" and steps.data[0].usage.total_tokens == 15
    step = client.beta.threads.runs.steps.retrieve(step_id=steps.data[0].id, run_id=run.id, thread_id=thread.id)
    assert step.step_details.message_creation.message_id == messages.data[0].id


def test_poll_after_header_and_retrieve_modify_list(client, assistant, fake_llm, server):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, metadata={"k": "v"})
    assert run.status == "queued" and run.metadata == {"k": "v"}
    raw = httpx.get(f"{server.base_url}/threads/{thread.id}/runs/{run.id}", headers={"OpenAI-Beta": "assistants=v2"})
    assert raw.headers["openai-poll-after-ms"] == "20"
    run = client.beta.threads.runs.poll(run.id, thread_id=thread.id)
    assert run.status == "completed"
    run = client.beta.threads.runs.update(run.id, thread_id=thread.id, metadata={"k": "w"})
    assert run.metadata == {"k": "w"}
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).metadata == {"k": "w"}
    runs = client.beta.threads.runs.list(thread_id=thread.id)
    assert [r.id for r in runs.data] == [run.id]


def test_stream_helper_with_event_handler(client, assistant, fake_llm):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "stream please"}])
    fake_llm.script(Reply(text="One two three four", chunks=4))

    class Handler(AssistantEventHandler):
        def __init__(self) -> None:
            super().__init__()
            self.deltas: list[str] = []
            self.done_text = None

        def on_text_delta(self, delta, snapshot) -> None:  # noqa: ANN001
            self.deltas.append(delta.value)

        def on_text_done(self, text) -> None:  # noqa: ANN001
            self.done_text = text.value

    handler = Handler()
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id, event_handler=handler) as s:
        s.until_done()
    assert "".join(handler.deltas) == "One two three four"
    assert len(handler.deltas) == 4
    assert handler.done_text == "One two three four"
    assert handler.get_final_run().status == "completed"
    assert handler.get_final_messages()[0].content[0].text.value == "One two three four"


def test_parallel_function_calls_poll(client, assistant, fake_llm):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "weather in Paris and Rome?"}])
    fake_llm.script(
        Reply(
            tool_calls=[ToolCallSpec("get_weather", '{"city":"Paris"}'), ToolCallSpec("get_weather", '{"city":"Rome"}')]
        ),
        Reply(text="Paris is sunny, Rome is rainy."),
    )
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20)
    assert run.status == "requires_action"
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [c.function.arguments for c in calls] == ['{"city":"Paris"}', '{"city":"Rome"}']
    assert all(c.id.startswith("call_") for c in calls)
    assert run.usage is not None
    outputs = [{"tool_call_id": calls[0].id, "output": "sunny"}, {"tool_call_id": calls[1].id, "output": "rainy"}]
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        thread_id=thread.id, run_id=run.id, tool_outputs=outputs, poll_interval_ms=20
    )
    assert run.status == "completed"
    sent = fake_llm.requests[-1]["messages"]
    assert sent[-3]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert [m["content"] for m in sent[-2:]] == ["sunny", "rainy"]
    assert [m["tool_call_id"] for m in sent[-2:]] == [calls[0].id, calls[1].id]
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    assert [c.function.output for c in steps[0].step_details.tool_calls] == ["sunny", "rainy"]
    assert steps[0].status == "completed"
    total = sum(s.usage.total_tokens for s in steps)
    assert run.usage.total_tokens == total


def test_function_calls_streaming_both_legs(client, assistant, fake_llm):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "weather?"}])
    fake_llm.script(Reply(tool_calls=[ToolCallSpec("get_weather", '{"city":"Oslo"}', chunks=4)]), Reply(text="Cold."))
    created, deltas = [], []

    class Handler(AssistantEventHandler):
        def on_tool_call_created(self, tool_call) -> None:  # noqa: ANN001
            created.append(tool_call)

        def on_tool_call_delta(self, delta, snapshot) -> None:  # noqa: ANN001
            deltas.append(snapshot)

    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id, event_handler=Handler()) as s:
        s.until_done()
        run = s.get_final_run()
    assert run.status == "requires_action"
    assert created[0].function.name == "get_weather"
    assert deltas[-1].function.arguments == '{"city":"Oslo"}'
    assert deltas[-1].id == created[0].id  # the id was sent once, not concatenated
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    with client.beta.threads.runs.submit_tool_outputs_stream(
        thread_id=thread.id, run_id=run.id, tool_outputs=[{"tool_call_id": call.id, "output": "-5C"}]
    ) as s:
        text = "".join(s.text_deltas)
        final = s.get_final_run()
    assert text == "Cold."
    assert final.status == "completed"


def test_create_and_run_poll_and_stream(client, assistant, fake_llm):
    fake_llm.script(Reply(text="first"), Reply(text="second"))
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "a"}], "metadata": {"x": "1"}},
        poll_interval_ms=20,
    )
    assert run.status == "completed"
    assert client.beta.threads.retrieve(run.thread_id).metadata == {"x": "1"}
    with client.beta.threads.create_and_run_stream(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "b"}]}
    ) as s:
        text = "".join(s.text_deltas)
        final = s.get_final_run()
    assert text == "second" and final.status == "completed"


def test_run_overrides_reach_the_model(client, assistant, fake_llm):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "q"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        model="gpt-4o-mini",
        instructions="Override.",
        additional_instructions="Also this.",
        additional_messages=[{"role": "user", "content": "extra message"}],
        tools=[],
        temperature=0.3,
        top_p=0.5,
        max_completion_tokens=300,
        response_format={"type": "json_object"},
        poll_interval_ms=20,
    )
    assert run.status == "completed"
    assert run.model == "gpt-4o-mini" and run.instructions == "Override.\nAlso this."
    assert run.temperature == 0.3 and run.top_p == 0.5 and run.tools == []
    sent = fake_llm.requests[-1]
    assert sent["model"] == "gpt-4o-mini"
    assert sent["messages"][0]["content"] == "Override.\nAlso this."
    assert sent["messages"][-1]["content"] == "extra message"
    assert sent["temperature"] == 0.3 and sent["top_p"] == 0.5
    assert sent["response_format"] == {"type": "json_object"}
    assert "tools" not in sent
    assert sent.get("max_completion_tokens", sent.get("max_tokens")) == 300
    texts = [m.content[0].text.value for m in client.beta.threads.messages.list(thread.id, order="asc")]
    assert texts[:2] == ["q", "extra message"]


def test_tool_choice_and_parallel_flags_reach_the_model(client, assistant, fake_llm):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "q"}])
    fake_llm.script(Reply(tool_calls=[ToolCallSpec("get_weather", '{"city":"A"}'), ToolCallSpec("get_weather", "{}")]))
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
        poll_interval_ms=20,
    )
    sent = fake_llm.requests[-1]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False
    assert run.status == "requires_action"
    assert len(run.required_action.submit_tool_outputs.tool_calls) == 1  # parallel calls off: one call per turn
    client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    thread2 = client.beta.threads.create(messages=[{"role": "user", "content": "q"}])
    client.beta.threads.runs.create_and_poll(
        thread_id=thread2.id, assistant_id=assistant.id, tool_choice="none", poll_interval_ms=20
    )
    assert "tools" not in fake_llm.requests[-1]


def test_json_schema_response_format(client, fake_llm):
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "result", "schema": schema, "strict": True}}
    a = client.beta.assistants.create(model="gpt-4o", response_format=fmt)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "2+2"}])
    fake_llm.script(Reply(text='{"answer": 4}'))
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=a.id, poll_interval_ms=20)
    assert run.status == "completed"
    assert run.response_format.type == "json_schema"
    assert fake_llm.requests[-1]["response_format"] == fmt
    assert client.beta.threads.messages.list(thread.id).data[0].content[0].text.value == '{"answer": 4}'
    with_tools = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])
    try:
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=with_tools.id, response_format=fmt)
        raise AssertionError("expected a 400")
    except openai.BadRequestError as exc:
        assert exc.body["message"] == (
            "Invalid tools: all tools must be of type `function` when `response_format` is of type `json_schema`."
        )
