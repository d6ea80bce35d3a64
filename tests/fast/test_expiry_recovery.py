"""Expiry with the manual clock (no sleeping) and recovery across an app restart on the same data dir."""

from __future__ import annotations

import asyncio

import openai
import pytest

from threadline.app import create_app
from threadline.providers.router import ProviderRouter

from .conftest import sdk_client
from .helpers import wait_for, wait_status
from .scripted import Call, Turn

pytestmark = pytest.mark.anyio

PAST_EXPIRY_S = 3600  # well past the default 600 s: created_at is read before the test advances the clock


async def test_requires_action_run_expires(client, llm, clock, runtime):
    a = await client.beta.assistants.create(model="gpt-4o", tools=[{"type": "function", "function": {"name": "f"}}])
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
    llm.script(Turn(tool_calls=[Call("f")]))
    run = await client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=a.id, poll_interval_ms=10)
    assert run.status == "requires_action" and run.expires_at == run.created_at + 600
    clock.advance(PAST_EXPIRY_S)
    # the deadline is enforced on submit even before the sweep has run
    with pytest.raises(openai.BadRequestError) as exc:
        await client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": "call_x", "output": "late"}]
        )
    assert exc.value.body["message"] == 'Runs in status "expired" do not accept tool outputs.'
    await asyncio.to_thread(runtime.workers.expire)  # what the sweep does every second (it may have beaten us)
    run = await client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    assert run.status == "expired" and run.required_action is None
    step = (await client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id)).data[0]
    assert step.status == "expired" and step.expired_at is not None
    await client.beta.threads.messages.create(thread_id=thread.id, role="user", content="unlocked")


async def test_requires_action_run_does_not_expire_early(client, llm, clock, runtime):
    a = await client.beta.assistants.create(model="gpt-4o", tools=[{"type": "function", "function": {"name": "f"}}])
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
    llm.script(Turn(tool_calls=[Call("f")]))
    run = await client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=a.id, poll_interval_ms=10)
    clock.advance(500)
    assert await asyncio.to_thread(runtime.workers.expire) == 0
    call_id = run.required_action.submit_tool_outputs.tool_calls[0].id
    done = await client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call_id, "output": "ok"}]
    )
    assert done.status == "completed"


async def test_queued_runs_cancel_and_expire_without_workers(settings, llm, clock):
    app = create_app(settings.model_copy(update={"run_workers": 0}), providers=ProviderRouter.single(llm), clock=clock)
    async with app.router.lifespan_context(app), sdk_client(app) as client:
        a = await client.beta.assistants.create(model="gpt-4o")
        t1 = await client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
        run = await client.beta.threads.runs.create(thread_id=t1.id, assistant_id=a.id)
        assert (await client.beta.threads.runs.retrieve(run.id, thread_id=t1.id)).status == "queued"
        assert (await client.beta.threads.runs.cancel(run.id, thread_id=t1.id)).status == "cancelled"
        t2 = await client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
        run2 = await client.beta.threads.runs.create(thread_id=t2.id, assistant_id=a.id)
        clock.advance(PAST_EXPIRY_S)
        run2 = await wait_status(client, t2.id, run2.id, {"expired"})  # the real sweep, every second
        assert run2.status == "expired"
    assert llm.requests == []


async def test_in_progress_run_expires_at_its_next_checkpoint(client, llm, clock):
    a = await client.beta.assistants.create(model="gpt-4o")
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
    llm.script(Turn(text="word " * 40, hold=3))
    run = await client.beta.threads.runs.create(thread_id=thread.id, assistant_id=a.id)
    await wait_for(llm.holding)
    clock.advance(PAST_EXPIRY_S)
    llm.release()
    run = await wait_status(client, thread.id, run.id, {"expired", "completed", "failed"})
    assert run.status == "expired"
    await client.beta.threads.messages.create(thread_id=thread.id, role="user", content="unlocked")


async def test_interrupted_run_is_recovered_on_restart(settings, llm, clock):
    first = create_app(settings, providers=ProviderRouter.single(llm), clock=clock)
    async with first.router.lifespan_context(first), sdk_client(first) as client:
        a = await client.beta.assistants.create(model="gpt-4o")
        thread = await client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
        llm.script(Turn(text="slow " * 40, hold=3))
        run = await client.beta.threads.runs.create(thread_id=thread.id, assistant_id=a.id)
        await wait_for(llm.holding)
    # the executor died with the first app (its task was cancelled mid-stream): the SQLite store recovers at start-up
    second = create_app(settings, providers=ProviderRouter.single(llm), clock=clock)
    async with second.router.lifespan_context(second), sdk_client(second) as client:
        run = await client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
        assert run.status == "failed" and run.last_error.code == "server_error"
        messages = (await client.beta.threads.messages.list(thread_id=thread.id, run_id=run.id)).data
        assert all(m.status != "in_progress" for m in messages)
        await client.beta.threads.messages.create(thread_id=thread.id, role="user", content="usable after the crash")


async def test_queued_run_survives_restart(settings, llm, clock):
    first = create_app(
        settings.model_copy(update={"run_workers": 0}), providers=ProviderRouter.single(llm), clock=clock
    )
    async with first.router.lifespan_context(first), sdk_client(first) as client:
        a = await client.beta.assistants.create(model="gpt-4o")
        thread = await client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
        run = await client.beta.threads.runs.create(thread_id=thread.id, assistant_id=a.id)
    second = create_app(settings, providers=ProviderRouter.single(llm), clock=clock)
    async with second.router.lifespan_context(second), sdk_client(second) as client:
        assert (await wait_status(client, thread.id, run.id, {"completed", "failed"})).status == "completed"


async def test_unroutable_model_fails_the_run(settings, clock):
    app = create_app(settings, providers=ProviderRouter([]), clock=clock)
    async with app.router.lifespan_context(app), sdk_client(app) as client:
        a = await client.beta.assistants.create(model="claude-3-5-sonnet-latest")
        thread = await client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
        run = await client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=a.id, poll_interval_ms=10
        )
        assert run.status == "failed" and run.last_error.code == "invalid_prompt"
        assert run.last_error.message.startswith("No provider configured for model 'claude-3-5-sonnet-latest'")
