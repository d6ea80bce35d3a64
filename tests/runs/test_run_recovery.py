"""Expiry, queued-run cancellation and crash recovery: no run is ever left hanging, no thread left locked."""

from __future__ import annotations

import time

import openai
import pytest

from fakes import Reply, ToolCallSpec
from support.llm import llm_env
from support.sdk import make_client

from .test_run_lifecycle import wait_status


@pytest.fixture
def start(server_factory, backend, fake_llm):  # noqa: ANN001, ANN201
    handles = []

    def _start(**env: str):  # noqa: ANN202
        handle = server_factory.start(env=llm_env(fake_llm, **env), backend=backend)
        handles.append(handle)
        return handle, make_client(handle.base_url)

    yield _start
    for handle in handles:
        handle.stop()


def test_requires_action_run_expires(start, fake_llm):
    _, client = start(THREADLINE_RUN_EXPIRES_AFTER="8")  # room for reaching requires_action on a loaded machine
    a = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "function", "function": {"name": "f"}}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
    fake_llm.script(Reply(tool_calls=[ToolCallSpec("f", "{}")]))
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=a.id, poll_interval_ms=20)
    assert run.status == "requires_action" and run.expires_at == run.created_at + 8
    run = wait_status(client, thread.id, run.id, {"expired"}, timeout=20)
    assert run.status == "expired"
    step = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id).data[0]
    assert step.status == "expired" and step.expired_at is not None
    call_id = "call_x"
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call_id}]
        )
    assert exc.value.body["message"] == 'Runs in status "expired" do not accept tool outputs.'
    client.beta.threads.messages.create(thread_id=thread.id, role="user", content="unlocked")


def test_queued_runs_cancel_and_expire_without_workers(start):
    _, client = start(THREADLINE_RUN_WORKERS="0", THREADLINE_RUN_EXPIRES_AFTER="2")
    a = client.beta.assistants.create(model="gpt-4o")
    t1 = client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
    run = client.beta.threads.runs.create(thread_id=t1.id, assistant_id=a.id)
    assert client.beta.threads.runs.retrieve(run.id, thread_id=t1.id).status == "queued"
    cancelled = client.beta.threads.runs.cancel(run.id, thread_id=t1.id)
    assert cancelled.status == "cancelled"
    t2 = client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
    run2 = client.beta.threads.runs.create(thread_id=t2.id, assistant_id=a.id)
    assert wait_status(client, t2.id, run2.id, {"expired"}, timeout=10).status == "expired"


def test_crash_mid_run_is_recovered_on_restart(start, fake_llm):
    # SQLite (one server process) recovers at start-up; PostgreSQL once the dead executor's lease runs out.
    handle, client = start(THREADLINE_RUN_LEASE_S="2")
    a = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
    fake_llm.script(Reply(text="slow " * 100, chunks=100, tokens_per_s=20))
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=a.id)
    assert wait_status(client, thread.id, run.id, {"in_progress"}).status == "in_progress"
    time.sleep(0.3)
    handle.kill()
    handle.restart()
    client = make_client(handle.base_url)
    run = wait_status(client, thread.id, run.id, {"failed"}, timeout=10)
    assert run.status == "failed"
    assert run.last_error.code == "server_error"
    message = client.beta.threads.messages.list(thread_id=thread.id, run_id=run.id).data
    assert all(m.status != "in_progress" for m in message)
    client.beta.threads.messages.create(thread_id=thread.id, role="user", content="thread usable after the crash")


def test_queued_run_survives_restart(start, fake_llm):
    handle, client = start(THREADLINE_RUN_WORKERS="0")
    a = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=a.id)
    handle.kill()
    handle.env["THREADLINE_RUN_WORKERS"] = "4"
    handle.restart()
    client = make_client(handle.base_url)
    assert wait_status(client, thread.id, run.id, {"completed", "failed"}).status == "completed"
