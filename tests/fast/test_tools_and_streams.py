"""Function calling over streams, tool_choice and response_format as the engine hands them to the model, leases."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from support.sequences import AFTER_TOOL_OUTPUTS
from threadline.app import create_app
from threadline.providers.router import ProviderRouter
from threadline.store import schema

from .conftest import sdk_client
from .helpers import collapse, sse_events, wait_for, wait_status
from .scripted import Call, Turn

pytestmark = pytest.mark.anyio

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


@pytest.fixture
async def assistant(client):  # noqa: ANN001, ANN201
    return await client.beta.assistants.create(model="gpt-4o", tools=[WEATHER])


async def test_function_call_streamed_on_both_legs(http, assistant, llm):
    thread = (await http.post("/threads", json={"messages": [{"role": "user", "content": "weather"}]})).json()
    llm.script(Turn(tool_calls=[Call("get_weather", '{"city":"Oslo"}', chunks=4)]))
    r = await http.post(f"/threads/{thread['id']}/runs", json={"assistant_id": assistant.id, "stream": True})
    events = sse_events(r)
    seq = collapse([n for n, _ in events])
    assert seq[-2:] == ["thread.run.requires_action", "done"] and "thread.run.step.delta" in seq
    fragments = [
        d["delta"]["step_details"]["tool_calls"][0]["function"].get("arguments", "")
        for n, d in events
        if n == "thread.run.step.delta"
    ]
    assert "".join(fragments) == '{"city":"Oslo"}'
    run = dict(events)["thread.run.requires_action"]
    call = run["required_action"]["submit_tool_outputs"]["tool_calls"][0]
    llm.script(Turn(text="Cold.", chunks=1))
    r = await http.post(
        f"/threads/{thread['id']}/runs/{run['id']}/submit_tool_outputs",
        json={"tool_outputs": [{"tool_call_id": call["id"], "output": "-5C"}], "stream": True},
    )
    more = sse_events(r)
    assert collapse([n for n, _ in more]) == AFTER_TOOL_OUTPUTS
    first = next(d for n, d in more if n == "thread.run.step.completed")
    assert first["step_details"]["tool_calls"][0]["function"]["output"] == "-5C"
    assert [m.content for m in llm.requests[-1].messages if m.role == "tool"] == ["-5C"]


async def test_create_thread_and_run_stream_starts_with_thread_created(http, assistant):
    r = await http.post(
        "/threads/runs",
        json={"assistant_id": assistant.id, "stream": True, "thread": {"messages": [{"role": "user", "content": "x"}]}},
    )
    names = [n for n, _ in sse_events(r)]
    assert names[:3] == ["thread.created", "thread.run.created", "thread.run.queued"]
    assert names[-2:] == ["thread.run.completed", "done"]


async def test_tool_choice_and_parallel_flags_reach_the_model(client, assistant, llm):
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "q"}])
    llm.script(Turn(tool_calls=[Call("get_weather", '{"city":"A"}'), Call("get_weather", "{}")]))
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
        poll_interval_ms=10,
    )
    sent = llm.requests[-1]
    assert sent.tool_choice == "get_weather" and sent.parallel_tool_calls is False
    assert run.status == "requires_action"
    assert len(run.required_action.submit_tool_outputs.tool_calls) == 1  # parallel calls off: one call per turn
    await client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    thread2 = await client.beta.threads.create(messages=[{"role": "user", "content": "q"}])
    await client.beta.threads.runs.create_and_poll(
        thread_id=thread2.id, assistant_id=assistant.id, tool_choice="none", poll_interval_ms=10
    )
    assert llm.requests[-1].tool_choice == "none"


async def test_json_schema_response_format_reaches_the_model(client, llm):
    schema_ = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "result", "schema": schema_, "strict": True}}
    a = await client.beta.assistants.create(model="gpt-4o", response_format=fmt)
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "2+2"}])
    llm.script(Turn(text='{"answer": 4}', chunks=1))
    run = await client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=a.id, poll_interval_ms=10)
    assert run.status == "completed" and run.response_format.type == "json_schema"
    assert llm.requests[-1].response_format["json_schema"]["schema"] == schema_
    assert (await client.beta.threads.messages.list(thread.id)).data[0].content[0].text.value == '{"answer": 4}'


async def test_live_executor_keeps_its_lease_in_clock_time(settings, llm, clock):
    # a short lease makes the heartbeat beat often; the clock jumps far ahead, the heartbeat follows it, and the
    # recovery sweep (which fails runs whose lease ran out) leaves the live run alone
    app = create_app(
        settings.model_copy(update={"run_lease_s": 0.3}), providers=ProviderRouter.single(llm), clock=clock
    )
    async with app.router.lifespan_context(app), sdk_client(app) as client:
        rt = app.state.runtime
        a = await client.beta.assistants.create(model="gpt-4o")
        thread = await client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
        llm.script(Turn(text="word " * 20, hold=2))
        run = await client.beta.threads.runs.create(thread_id=thread.id, assistant_id=a.id)
        await wait_for(llm.holding)
        now = clock.advance(300)  # far past the lease, short of the run's expiry

        def lease_until() -> float:
            with rt.store.read() as conn:
                return conn.execute(sa.select(schema.runs.c.lease_until).where(schema.runs.c.id == run.id)).scalar()

        for _ in range(200):
            if await asyncio.to_thread(lease_until) > now:
                break
            await asyncio.sleep(0.05)
        assert await asyncio.to_thread(lease_until) > now
        assert await asyncio.to_thread(rt.workers.recover, False) == 0
        llm.release()
        assert (await wait_status(client, thread.id, run.id, {"completed", "failed"})).status == "completed"
