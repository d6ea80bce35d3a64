"""Cancel, budgets, truncation and provider failures, in-process with the scripted model (no sleeping)."""

from __future__ import annotations

import asyncio

import pytest

from threadline.providers.base import ProviderError

from .helpers import sse_events, wait_for, wait_status
from .scripted import Turn

pytestmark = pytest.mark.anyio


@pytest.fixture
async def assistant(client):  # noqa: ANN001, ANN201
    return await client.beta.assistants.create(model="gpt-4o")


async def test_cancel_in_progress(client, assistant, llm):
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "long"}])
    llm.script(Turn(text="word " * 50, hold=5))
    run = await client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    await wait_for(llm.holding)
    cancelling = await client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert cancelling.status in ("cancelling", "cancelled")
    llm.release()
    run = await wait_status(client, thread.id, run.id, {"cancelled"})
    assert run.status == "cancelled" and run.cancelled_at is not None
    message = (await client.beta.threads.messages.list(thread_id=thread.id, run_id=run.id)).data[0]
    assert message.status == "incomplete" and message.incomplete_details.reason == "run_cancelled"
    assert message.content[0].text.value.startswith("word")  # the partial text is kept
    step = (await client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id)).data[0]
    assert step.status == "cancelled"
    await client.beta.threads.messages.create(thread_id=thread.id, role="user", content="thread unlocked")


async def test_cancel_while_streaming_emits_cancel_events(client, http, assistant, llm):
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "long"}])
    llm.script(Turn(text="word " * 50, hold=3))
    stream = asyncio.create_task(
        http.post(f"/threads/{thread.id}/runs", json={"assistant_id": assistant.id, "stream": True})
    )
    await wait_for(llm.holding)
    run_id = (await client.beta.threads.runs.list(thread_id=thread.id)).data[0].id
    assert (await http.post(f"/threads/{thread.id}/runs/{run_id}/cancel")).status_code == 200
    llm.release()
    events = sse_events(await asyncio.wait_for(stream, 20))
    tail = [n for n, _ in events if n != "thread.message.delta"][-5:]
    assert tail == [
        "thread.run.cancelling",
        "thread.message.incomplete",
        "thread.run.step.cancelled",
        "thread.run.cancelled",
        "done",
    ]


async def test_max_completion_tokens_budget_makes_run_incomplete(client, assistant, llm):
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "talk"}])
    llm.script(Turn(text="word " * 400))
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=256, poll_interval_ms=10
    )
    assert run.status == "incomplete" and run.incomplete_details.reason == "max_completion_tokens"
    message = (await client.beta.threads.messages.list(thread_id=thread.id, run_id=run.id)).data[0]
    assert message.status == "incomplete" and message.incomplete_details.reason == "max_tokens"
    assert llm.requests[-1].max_tokens is not None and llm.requests[-1].max_tokens <= 256
    await client.beta.threads.messages.create(thread_id=thread.id, role="user", content="unlocked")


async def test_max_prompt_tokens_budget(client, assistant, llm):
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "word " * 600}])
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_prompt_tokens=256, poll_interval_ms=10
    )
    assert run.status == "incomplete" and run.incomplete_details.reason == "max_prompt_tokens"
    assert llm.requests == []  # stopped before calling the model


async def test_truncation_last_messages(client, assistant, llm):
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": f"message {i}"} for i in range(6)])
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        truncation_strategy={"type": "last_messages", "last_messages": 2},
        poll_interval_ms=10,
    )
    assert run.status == "completed"
    assert run.truncation_strategy.type == "last_messages" and run.truncation_strategy.last_messages == 2
    assert [m.content for m in llm.requests[-1].messages if m.role == "user"] == ["message 4", "message 5"]


async def test_truncation_auto_keeps_recent_messages_within_the_context_window(client, llm):
    a = await client.beta.assistants.create(model="llama3", instructions="short")  # 8k context window
    thread = await client.beta.threads.create(
        messages=[{"role": "user", "content": f"{i} " + "filler " * 900} for i in range(12)]
    )
    await client.beta.threads.messages.create(thread_id=thread.id, role="user", content="the final question")
    run = await client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=a.id, poll_interval_ms=10)
    assert run.status == "completed"
    sent = llm.requests[-1].messages
    assert sent[-1].content == "the final question" and 1 < len(sent) < 14


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ProviderError("server_error", "upstream exploded"), "server_error"),
        (ProviderError("rate_limit_exceeded", "slow down"), "rate_limit_exceeded"),
        (ProviderError("invalid_prompt", "bad prompt"), "invalid_prompt"),
    ],
)
async def test_provider_error_fails_run_with_last_error(client, assistant, llm, error, code):
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
    llm.script(Turn(error=error))
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=10
    )
    assert run.status == "failed" and run.failed_at is not None and run.expires_at is None
    assert run.last_error.code == code and error.message in run.last_error.message
    await client.beta.threads.messages.create(thread_id=thread.id, role="user", content="unlocked after failure")


async def test_provider_error_mid_stream_keeps_partial_text(client, assistant, llm):
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
    llm.script(Turn(text="one two three four", error=ProviderError("server_error", "cut off"), error_after=2))
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=10
    )
    assert run.status == "failed" and run.last_error.code == "server_error"
    message = (await client.beta.threads.messages.list(thread_id=thread.id, run_id=run.id)).data[0]
    assert message.status == "incomplete" and message.content[0].text.value == "one two "
    step = (await client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id)).data[0]
    assert step.status == "failed"
