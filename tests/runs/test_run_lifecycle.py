"""Thread locks, exact error messages, cancel, budgets, truncation, provider failures, disconnects, crashes."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from fakes import Reply, ToolCallSpec

from .sse import parse


def wait_status(client, thread_id: str, run_id: str, statuses: set[str], timeout: float = 15.0):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while True:
        run = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
        if run.status in statuses or time.monotonic() > deadline:
            return run
        time.sleep(0.02)


def requires_action_run(client, assistant, fake_llm):  # noqa: ANN001, ANN201
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "weather"}])
    fake_llm.script(Reply(tool_calls=[ToolCallSpec("get_weather", '{"city":"A"}'), ToolCallSpec("get_weather", "{}")]))
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20)
    assert run.status == "requires_action"
    return thread, run


def test_thread_lock_messages(client, assistant, fake_llm):
    thread, run = requires_action_run(client, assistant, fake_llm)
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.messages.create(thread_id=thread.id, role="user", content="more")
    assert exc.value.body["message"] == f"Can't add messages to {thread.id} while a run {run.id} is active."
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    assert exc.value.body["message"] == f"Thread {thread.id} already has an active run {run.id}."
    cancelled = client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at is not None
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id).data
    assert [s.status for s in steps] == ["cancelled"]
    client.beta.threads.messages.create(thread_id=thread.id, role="user", content="now allowed")
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert exc.value.body["message"] == "Cannot cancel run with status 'cancelled'."


def test_tool_output_errors(client, assistant, fake_llm):
    thread, run = requires_action_run(client, assistant, fake_llm)
    ids = [c.id for c in run.required_action.submit_tool_outputs.tool_calls]
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": ids[0], "output": "x"}]
        )
    assert exc.value.body["message"] == f"Expected tool outputs for call_ids {ids!r}, got {[ids[0]]!r}"
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": i, "output": "x"} for i in [*ids, "call_extra"]]
        )
    fake_llm.script(Reply(text="thanks"))
    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": i, "output": "x"} for i in ids],
        poll_interval_ms=20,
    )
    assert done.status == "completed"
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": i, "output": "x"} for i in ids]
        )
    assert exc.value.body["message"] == 'Runs in status "completed" do not accept tool outputs.'


def test_cancel_in_progress(client, assistant, fake_llm):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "long"}])
    fake_llm.script(Reply(text="word " * 200, chunks=200, tokens_per_s=40))
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    wait_status(client, thread.id, run.id, {"in_progress"})
    time.sleep(0.3)
    run = client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert run.status in ("cancelling", "cancelled")
    run = wait_status(client, thread.id, run.id, {"cancelled"})
    assert run.status == "cancelled" and run.cancelled_at is not None
    message = client.beta.threads.messages.list(thread_id=thread.id, run_id=run.id).data[0]
    assert message.status == "incomplete" and message.incomplete_details.reason == "run_cancelled"
    step = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id).data[0]
    assert step.status == "cancelled"
    client.beta.threads.messages.create(thread_id=thread.id, role="user", content="thread unlocked")


def test_cancel_while_streaming_emits_cancel_events(client, assistant, fake_llm, server):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "long"}])
    fake_llm.script(Reply(text="word " * 100, chunks=100, tokens_per_s=50))
    headers = {"OpenAI-Beta": "assistants=v2"}
    lines: list[str] = []
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as c:
        with c.stream("POST", f"/threads/{thread.id}/runs", json={"assistant_id": assistant.id, "stream": True}) as r:
            cancelled = False
            for line in r.iter_lines():
                lines.append(line)
                if not cancelled and line == "event: thread.message.delta":
                    run_id = c.get(f"/threads/{thread.id}/runs").json()["data"][0]["id"]
                    assert c.post(f"/threads/{thread.id}/runs/{run_id}/cancel").status_code == 200
                    cancelled = True
    seq = [n for n, _ in parse(lines)]
    tail = [n for n in seq if n != "thread.message.delta"][-5:]
    assert tail == [
        "thread.run.cancelling",
        "thread.message.incomplete",
        "thread.run.step.cancelled",
        "thread.run.cancelled",
        "done",
    ]


def test_max_completion_tokens_budget_makes_run_incomplete(client, assistant, fake_llm):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "talk"}])
    fake_llm.script(Reply(text="word " * 400, chunks=400))
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=256, poll_interval_ms=20
    )
    assert run.status == "incomplete"
    assert run.incomplete_details.reason == "max_completion_tokens"
    message = client.beta.threads.messages.list(thread_id=thread.id, run_id=run.id).data[0]
    assert message.status == "incomplete" and message.incomplete_details.reason == "max_tokens"
    client.beta.threads.messages.create(thread_id=thread.id, role="user", content="unlocked")


def test_max_prompt_tokens_budget(client, assistant, fake_llm):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "word " * 600}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_prompt_tokens=256, poll_interval_ms=20
    )
    assert run.status == "incomplete"
    assert run.incomplete_details.reason == "max_prompt_tokens"


def test_truncation_last_messages(client, assistant, fake_llm):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"message {i}"} for i in range(6)])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        truncation_strategy={"type": "last_messages", "last_messages": 2},
        poll_interval_ms=20,
    )
    assert run.status == "completed"
    assert run.truncation_strategy.type == "last_messages" and run.truncation_strategy.last_messages == 2
    sent = fake_llm.requests[-1]["messages"]
    assert [m["content"] for m in sent[1:]] == ["message 4", "message 5"]


def test_truncation_auto_keeps_recent_messages_within_the_context_window(client, fake_llm):
    # 8k-context model: a long thread must be cut from the old end, keeping the last message.
    a = client.beta.assistants.create(model="llama3", instructions="short")
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": f"{i} " + "filler " * 900} for i in range(12)]
    )
    client.beta.threads.messages.create(thread_id=thread.id, role="user", content="the final question")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=a.id, poll_interval_ms=20)
    assert run.status == "completed"
    sent = fake_llm.requests[-1]["messages"]
    assert sent[-1]["content"] == "the final question"
    assert 1 < len(sent) < 14


def test_provider_error_fails_run_with_last_error(client, assistant, fake_llm):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
    fake_llm.script(*[Reply(error=500, message="upstream exploded")] * 5)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20)
    assert run.status == "failed"
    assert run.last_error.code == "server_error" and run.failed_at is not None
    fake_llm.reset()
    fake_llm.script(*[Reply(error=429, message="slow down", retry_after=0)] * 5)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20)
    assert run.status == "failed" and run.last_error.code == "rate_limit_exceeded"
    client.beta.threads.messages.create(thread_id=thread.id, role="user", content="unlocked after failure")


def test_retry_before_first_token_succeeds(client, assistant, fake_llm):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
    fake_llm.script(Reply(error=503, message="busy", retry_after=0), Reply(text="recovered"))
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20)
    assert run.status == "completed"
    assert client.beta.threads.messages.list(thread.id).data[0].content[0].text.value == "recovered"


def test_model_not_routable(server_factory, backend, validator):
    from support.sdk import make_client

    handle = server_factory.start(
        env={"OPENAI_API_KEY": "", "OPENAI_BASE_URL": "", "ANTHROPIC_API_KEY": ""}, backend=backend
    )
    try:
        c = make_client(handle.base_url, validator=validator)
        a = c.beta.assistants.create(model="claude-3-5-sonnet-latest")
        thread = c.beta.threads.create(messages=[{"role": "user", "content": "x"}])
        run = c.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=a.id, poll_interval_ms=20)
        assert run.status == "failed" and run.last_error.code == "invalid_prompt"
        assert run.last_error.message.startswith("No provider configured for model 'claude-3-5-sonnet-latest'")
        c.beta.threads.messages.create(thread_id=thread.id, role="user", content="the thread is not left locked")
    finally:
        handle.stop()


def test_client_disconnect_does_not_kill_the_run(client, assistant, fake_llm, server):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
    fake_llm.script(Reply(text="a b c d e f g h i j", chunks=10, tokens_per_s=20))
    with httpx.Client(base_url=server.base_url, headers={"OpenAI-Beta": "assistants=v2"}, timeout=30) as c:
        with c.stream("POST", f"/threads/{thread.id}/runs", json={"assistant_id": assistant.id, "stream": True}) as r:
            for line in r.iter_lines():
                if line == "event: thread.message.delta":
                    break  # hang up mid-stream
    run = client.beta.threads.runs.list(thread_id=thread.id).data[0]
    run = wait_status(client, thread.id, run.id, {"completed", "failed"})
    assert run.status == "completed"
    assert client.beta.threads.messages.list(thread.id).data[0].content[0].text.value == "a b c d e f g h i j"


def test_bad_run_requests(client, assistant):
    thread = client.beta.threads.create()
    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id="asst_doesnotexist")
    assert exc.value.body["message"] == "No assistant found with id 'asst_doesnotexist'."
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=5)
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.create(
            thread_id=thread.id,
            assistant_id=assistant.id,
            tool_choice={"type": "function", "function": {"name": "nope"}},
        )
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.retrieve("run_doesnotexist", thread_id=thread.id)
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.retrieve("nope", thread_id=thread.id)


def test_queued_run_shows_its_reply_in_progress_while_it_is_written(client, assistant, fake_llm):
    # A run nobody streams saves its reply message with the completion when the reply is quick; a slow reply is
    # saved in_progress early, so a client polling the thread sees it being written.
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "tell me slowly"}])
    fake_llm.script(Reply(text="word " * 30, chunks=30, tokens_per_s=10))
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    seen = None
    for _ in range(600):
        messages = client.beta.threads.messages.list(thread_id=thread.id, run_id=run.id).data
        if messages and messages[0].status == "in_progress":
            seen = messages[0]
            break
        if client.beta.threads.runs.retrieve(thread_id=thread.id, run_id=run.id).status not in (
            "queued",
            "in_progress",
        ):
            break
        time.sleep(0.02)
    assert seen is not None and seen.role == "assistant"
    steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id).data
    assert [s.status for s in steps] == ["in_progress"]
    run = client.beta.threads.runs.poll(thread_id=thread.id, run_id=run.id, poll_interval_ms=50)
    assert run.status == "completed"
    final = client.beta.threads.messages.retrieve(thread_id=thread.id, message_id=seen.id)
    assert final.status == "completed" and final.content[0].text.value.split() == ["word"] * 30
