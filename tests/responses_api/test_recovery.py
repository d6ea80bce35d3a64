"""Crash recovery of responses (docs/architecture.md, the run state machine): a background response in progress
whose executor died becomes failed (server_error), its recorded stream ends with `error` + `response.failed`, and
its conversation is usable again; a queued one survives a restart and is executed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import openai
import pytest

from fakes import Reply
from fakes.fake_openai import FakeOpenAI
from support.llm import llm_env
from support.sdk import make_client, raw_http_client
from support.server import ServerFactory, ServerHandle

from .test_create import MODEL, sse_events

Start = Callable[..., tuple[ServerHandle, openai.OpenAI]]


@pytest.fixture
def start(server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI) -> Iterator[Start]:
    handles: list[ServerHandle] = []

    def _start(**env: str) -> tuple[ServerHandle, openai.OpenAI]:
        handle = server_factory.start(env=llm_env(fake_llm, **env), backend=backend)
        handles.append(handle)
        return handle, make_client(handle.base_url)

    yield _start
    for handle in handles:
        handle.stop()


def wait_for(client: openai.OpenAI, response_id: str, statuses: set[str], timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = client.responses.retrieve(response_id).status
        if status in statuses or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def test_crash_mid_response_fails_it(start: Start, fake_llm: FakeOpenAI) -> None:
    # SQLite (one server process) recovers at start-up; PostgreSQL once the dead executor's lease runs out.
    handle, client = start(THREADLINE_RUN_LEASE_S="2")
    conv = client.conversations.create()
    fake_llm.script(Reply(text="slow " * 100, chunks=100, tokens_per_s=20))
    created = client.responses.create(model=MODEL, input="x", conversation=conv.id, background=True)
    assert wait_for(client, created.id, {"in_progress"}) == "in_progress"
    time.sleep(0.5)
    handle.kill()
    handle.restart()
    client = make_client(handle.base_url)
    assert wait_for(client, created.id, {"failed"}, timeout=20) == "failed"
    response = client.responses.retrieve(created.id)
    assert response.error is not None and response.error.code == "server_error"
    assert all(item.status != "in_progress" for item in response.output)
    with raw_http_client(handle.base_url) as http:
        events, done = sse_events(http, None, f"/responses/{created.id}?stream=true")
    assert done and [e["type"] for e in events][-2:] == ["error", "response.failed"]
    client.conversations.items.create(conv.id, items=[{"role": "user", "content": "usable after the crash"}])


def test_queued_response_survives_restart(start: Start, fake_llm: FakeOpenAI) -> None:
    handle, client = start(THREADLINE_RUN_WORKERS="0")
    created = client.responses.create(model=MODEL, input="x", background=True)
    assert client.responses.retrieve(created.id).status == "queued"
    handle.kill()
    handle.env["THREADLINE_RUN_WORKERS"] = "4"
    fake_llm.script(Reply(text="after the restart"))  # the restarted server may execute it at once
    handle.restart()
    client = make_client(handle.base_url)
    assert wait_for(client, created.id, {"completed", "failed"}) == "completed"
    assert client.responses.retrieve(created.id).output_text == "after the restart"
