"""Writes made by API clients while a run executes are never overwritten by the executor's own (older) copies."""

from __future__ import annotations

import httpx

from fakes import Reply
from fakes.fake_openai import FakeOpenAI

from .conftest import wait_for


def start_slow_run(http: httpx.Client, fake_llm: FakeOpenAI) -> tuple[str, str]:
    """A run whose reply streams for about 3 s; returns (thread_id, run_id) once its message exists."""
    fake_llm.script(Reply(text="one two three four five six", chunks=6, tokens_per_s=2))
    thread_id = http.post("/threads", json={"messages": [{"role": "user", "content": "hi"}]}).json()["id"]
    assistant_id = http.post("/assistants", json={"model": "gpt-4o"}).json()["id"]
    run_id = http.post(f"/threads/{thread_id}/runs", json={"assistant_id": assistant_id}).json()["id"]
    assert wait_for(lambda: http.get(f"/threads/{thread_id}/messages", params={"run_id": run_id}).json()["data"])
    return thread_id, run_id


def finished(http: httpx.Client, thread_id: str, run_id: str) -> dict:
    run = wait_for(
        lambda: (r := http.get(f"/threads/{thread_id}/runs/{run_id}").json())["status"] == "completed" and r, 30
    )
    assert run, http.get(f"/threads/{thread_id}/runs/{run_id}").json()
    return run


def test_run_metadata_set_while_it_runs_is_kept(http: httpx.Client, fake_llm: FakeOpenAI) -> None:
    thread_id, run_id = start_slow_run(http, fake_llm)
    modified = http.post(f"/threads/{thread_id}/runs/{run_id}", json={"metadata": {"k": "v"}}).json()
    assert modified["metadata"] == {"k": "v"} and modified["status"] == "in_progress"
    run = finished(http, thread_id, run_id)
    assert run["metadata"] == {"k": "v"}


def test_message_metadata_set_while_it_streams_is_kept(http: httpx.Client, fake_llm: FakeOpenAI) -> None:
    thread_id, run_id = start_slow_run(http, fake_llm)
    message = http.get(f"/threads/{thread_id}/messages", params={"run_id": run_id}).json()["data"][0]
    assert message["status"] == "in_progress"
    http.post(f"/threads/{thread_id}/messages/{message['id']}", json={"metadata": {"tag": "x"}}).raise_for_status()
    finished(http, thread_id, run_id)
    message = http.get(f"/threads/{thread_id}/messages/{message['id']}").json()
    assert message["status"] == "completed"
    assert message["content"][0]["text"]["value"] == "one two three four five six"
    assert message["metadata"] == {"tag": "x"}


def test_message_metadata_set_before_a_cancel_is_kept(http: httpx.Client, fake_llm: FakeOpenAI) -> None:
    thread_id, run_id = start_slow_run(http, fake_llm)
    message = http.get(f"/threads/{thread_id}/messages", params={"run_id": run_id}).json()["data"][0]
    http.post(f"/threads/{thread_id}/messages/{message['id']}", json={"metadata": {"tag": "y"}}).raise_for_status()
    http.post(f"/threads/{thread_id}/runs/{run_id}/cancel").raise_for_status()
    assert wait_for(lambda: http.get(f"/threads/{thread_id}/runs/{run_id}").json()["status"] == "cancelled")
    message = http.get(f"/threads/{thread_id}/messages/{message['id']}").json()
    assert message["status"] == "incomplete" and message["incomplete_details"] == {"reason": "run_cancelled"}
    assert message["metadata"] == {"tag": "y"}
