"""The run state machine in-process: text and function-call runs, streaming order, thread locks, tool outputs."""

from __future__ import annotations

import json

import openai
import pytest

from support.sequences import TEXT_RUN

from .helpers import collapse, sse_events
from .scripted import DEFAULT_TEXT, Call, Turn

pytestmark = pytest.mark.anyio


WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


@pytest.fixture
async def assistant(client):  # noqa: ANN001, ANN201
    return await client.beta.assistants.create(model="gpt-4o", instructions="Be brief.", tools=[WEATHER])


async def requires_action_run(client, assistant, llm):  # noqa: ANN001, ANN201
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "weather"}])
    llm.script(Turn(tool_calls=[Call("get_weather", '{"city":"A"}'), Call("get_weather", '{"city": "B"}', chunks=5)]))
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=10
    )
    assert run.status == "requires_action"
    return thread, run


async def test_text_run_completes_with_usage_and_step(client, assistant, llm):
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "hi there"}])
    llm.script(Turn(text="Hello there, friend", chunks=3, usage=(11, 7)))
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=10
    )
    assert run.status == "completed" and run.completed_at is not None and run.expires_at is None
    assert (run.usage.prompt_tokens, run.usage.completion_tokens, run.usage.total_tokens) == (11, 7, 18)
    message = (await client.beta.threads.messages.list(thread_id=thread.id)).data[0]
    assert message.run_id == run.id and message.status == "completed"
    assert message.content[0].text.value == "Hello there, friend"
    steps = (await client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id)).data
    assert [(s.type, s.status) for s in steps] == [("message_creation", "completed")]
    assert steps[0].step_details.message_creation.message_id == message.id
    sent = llm.requests[-1]
    assert sent.model == "gpt-4o" and sent.messages[0].role == "system" and sent.messages[0].content == "Be brief."
    assert sent.messages[-1].content == "hi there" and [t.name for t in sent.tools] == ["get_weather"]


async def test_stream_event_order(http, assistant, llm):
    thread = (await http.post("/threads", json={"messages": [{"role": "user", "content": "hi"}]})).json()
    llm.script(Turn(text="Hello there, friend", chunks=3))
    r = await http.post(f"/threads/{thread['id']}/runs", json={"assistant_id": assistant.id, "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r)
    assert collapse([n for n, _ in events]) == TEXT_RUN
    deltas = [d["delta"]["content"][0]["text"]["value"] for n, d in events if n == "thread.message.delta"]
    assert len(deltas) == 3 and "".join(deltas) == "Hello there, friend"
    created = dict(events)["thread.run.created"]
    assert created["status"] == "queued" and created["expires_at"] == created["created_at"] + 600


async def test_function_calls_accumulate_and_continue(client, assistant, llm):
    thread, run = await requires_action_run(client, assistant, llm)
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "A"}),
        ("get_weather", {"city": "B"}),
    ]
    assert all(c.id.startswith("call_") for c in calls) and len({c.id for c in calls}) == 2
    step = (await client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id)).data[0]
    assert step.type == "tool_calls" and step.status == "in_progress"
    llm.script(Turn(text="Sunny in A, rainy in B."))
    done = await client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": c.id, "output": f"out-{i}"} for i, c in enumerate(calls)],
        poll_interval_ms=10,
    )
    assert done.status == "completed"
    sent = llm.requests[-1].messages
    assistant_turn = next(m for m in sent if m.role == "assistant" and m.tool_calls)
    assert [tc.arguments for tc in assistant_turn.tool_calls] == ['{"city":"A"}', '{"city": "B"}']
    assert [(m.tool_call_id, m.content) for m in sent if m.role == "tool"] == [
        (calls[0].id, "out-0"),
        (calls[1].id, "out-1"),
    ]
    steps = (await client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id, order="asc")).data
    assert [(s.type, s.status) for s in steps] == [("tool_calls", "completed"), ("message_creation", "completed")]
    assert steps[0].step_details.tool_calls[1].function.output == "out-1"


async def test_thread_lock_messages(client, assistant, llm):
    thread, run = await requires_action_run(client, assistant, llm)
    with pytest.raises(openai.BadRequestError) as exc:
        await client.beta.threads.messages.create(thread_id=thread.id, role="user", content="more")
    assert exc.value.body["message"] == f"Can't add messages to {thread.id} while a run {run.id} is active."
    with pytest.raises(openai.BadRequestError) as exc:
        await client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    assert exc.value.body["message"] == f"Thread {thread.id} already has an active run {run.id}."
    cancelled = await client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at is not None
    steps = (await client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id)).data
    assert [s.status for s in steps] == ["cancelled"]
    await client.beta.threads.messages.create(thread_id=thread.id, role="user", content="now allowed")
    with pytest.raises(openai.BadRequestError) as exc:
        await client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert exc.value.body["message"] == "Cannot cancel run with status 'cancelled'."


async def test_tool_output_errors(client, assistant, llm):
    thread, run = await requires_action_run(client, assistant, llm)
    ids = [c.id for c in run.required_action.submit_tool_outputs.tool_calls]
    with pytest.raises(openai.BadRequestError) as exc:
        await client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": ids[0], "output": "x"}]
        )
    assert exc.value.body["message"] == f"Expected tool outputs for call_ids {ids!r}, got {[ids[0]]!r}"
    with pytest.raises(openai.BadRequestError):
        await client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": i, "output": "x"} for i in [*ids, "call_x"]]
        )
    done = await client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": i, "output": "x"} for i in ids]
    )
    assert done.status == "completed"
    with pytest.raises(openai.BadRequestError) as exc:
        await client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": i, "output": "x"} for i in ids]
        )
    assert exc.value.body["message"] == 'Runs in status "completed" do not accept tool outputs.'


async def test_text_then_tool_call_in_one_turn(client, assistant, llm):
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "weather?"}])
    llm.script(Turn(text="Let me check.", tool_calls=[Call("get_weather", "{}")]))
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=10
    )
    assert run.status == "requires_action"
    messages = (await client.beta.threads.messages.list(thread_id=thread.id, run_id=run.id)).data
    assert [m.content[0].text.value for m in messages] == ["Let me check."]
    assert messages[0].status == "completed"


async def test_overrides_reach_the_model(client, assistant, llm):
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        model="other-model",
        instructions="Override.",
        additional_instructions="And more.",
        temperature=0.25,
        top_p=0.5,
        tool_choice="none",
        parallel_tool_calls=False,
        poll_interval_ms=10,
    )
    assert run.status == "completed" and run.model == "other-model"
    sent = llm.requests[-1]
    assert sent.model == "other-model" and (sent.temperature, sent.top_p) == (0.25, 0.5)
    assert sent.tool_choice == "none" and sent.parallel_tool_calls is False
    assert "Override." in sent.messages[0].content and "And more." in sent.messages[0].content
    assert (await client.beta.threads.messages.list(thread.id)).data[0].content[0].text.value == DEFAULT_TEXT


async def test_bad_run_requests(client, assistant):
    thread = await client.beta.threads.create()
    with pytest.raises(openai.NotFoundError) as exc:
        await client.beta.threads.runs.create(thread_id=thread.id, assistant_id="asst_doesnotexist")
    assert exc.value.body["message"] == "No assistant found with id 'asst_doesnotexist'."
    with pytest.raises(openai.BadRequestError):
        await client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=5)
    with pytest.raises(openai.BadRequestError):
        await client.beta.threads.runs.create(
            thread_id=thread.id, assistant_id=assistant.id, tool_choice={"type": "function", "function": {"name": "no"}}
        )
    with pytest.raises(openai.NotFoundError):
        await client.beta.threads.runs.retrieve("run_doesnotexist", thread_id=thread.id)
