"""Cancel and expiry are prompt: they interrupt the wait for the model, for pollers and stream readers alike, also
when the cancel request reaches another server process than the one executing the run.

Bounds are generous (the machine is a loaded 2-core box): the model would take 30 s, the run must be cancelled
within CANCEL_BOUND_S.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fakes import Reply
from fakes.fake_openai import FakeOpenAI
from support.llm import llm_env
from support.sdk import make_client
from support.server import ServerFactory, ServerHandle

from .sse import parse

SLOW_S = 30  # the model's time to first token
CANCEL_BOUND_S = 5.0
HEADERS = {"OpenAI-Beta": "assistants=v2", "Authorization": "Bearer test"}


def wait_status(http: httpx.Client, thread_id: str, run_id: str, statuses: set[str], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        run = http.get(f"/threads/{thread_id}/runs/{run_id}").json()
        if run["status"] in statuses or time.monotonic() > deadline:
            return run
        time.sleep(0.05)


def new_thread(http: httpx.Client) -> str:
    return http.post("/threads", json={"messages": [{"role": "user", "content": "hi"}]}).json()["id"]


def new_assistant(http: httpx.Client) -> str:
    return http.post("/assistants", json={"model": "gpt-4o"}).json()["id"]


@pytest.fixture
def http(server: ServerHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, headers=HEADERS, timeout=60) as c:
        yield c


def test_cancel_interrupts_the_wait_for_the_first_token(http: httpx.Client, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(text="far too late", ttft_s=SLOW_S))
    thread_id = new_thread(http)
    run = http.post(f"/threads/{thread_id}/runs", json={"assistant_id": new_assistant(http)}).json()
    assert wait_status(http, thread_id, run["id"], {"in_progress"}, 15)["status"] == "in_progress"
    deadline = time.monotonic() + 15
    while not fake_llm.requests:  # the executor is waiting for the model now
        assert time.monotonic() < deadline
        time.sleep(0.05)
    started = time.monotonic()
    assert http.post(f"/threads/{thread_id}/runs/{run['id']}/cancel").json()["status"] in ("cancelling", "cancelled")
    run = wait_status(http, thread_id, run["id"], {"cancelled"}, CANCEL_BOUND_S)
    assert run["status"] == "cancelled", f"still {run['status']} after {time.monotonic() - started:.1f} s"
    assert run["cancelled_at"] is not None and run["expires_at"] is None
    # the request to the model was closed, not left waiting
    deadline = time.monotonic() + CANCEL_BOUND_S
    while fake_llm.abandoned < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake_llm.abandoned == 1
    # the thread is free again
    assert http.post(f"/threads/{thread_id}/messages", json={"role": "user", "content": "again"}).status_code == 200


def test_cancel_closes_the_upstream_stream(http: httpx.Client, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(text="word " * 300, chunks=300, tokens_per_s=10))
    thread_id = new_thread(http)
    run = http.post(f"/threads/{thread_id}/runs", json={"assistant_id": new_assistant(http)}).json()
    deadline = time.monotonic() + 15
    while not http.get(f"/threads/{thread_id}/messages", params={"run_id": run["id"]}).json()["data"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    http.post(f"/threads/{thread_id}/runs/{run['id']}/cancel").raise_for_status()
    assert wait_status(http, thread_id, run["id"], {"cancelled"}, CANCEL_BOUND_S)["status"] == "cancelled"
    deadline = time.monotonic() + CANCEL_BOUND_S
    while fake_llm.abandoned < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake_llm.abandoned == 1  # the model's stream was closed, not read to its end
    assert len(fake_llm.requests) == 1


def test_cancel_reaches_a_stream_reader_at_once(http: httpx.Client, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(text="far too late", ttft_s=SLOW_S))
    thread_id = new_thread(http)
    body = {"assistant_id": new_assistant(http), "stream": True}
    lines: list[str] = []
    created = threading.Event()
    run_id: dict[str, str] = {}
    ended: dict[str, float] = {}

    def read() -> None:
        with httpx.Client(base_url=http.base_url, headers=HEADERS, timeout=60) as c:
            with c.stream("POST", f"/threads/{thread_id}/runs", json=body) as r:
                for line in r.iter_lines():
                    lines.append(line)
                    if line.startswith('data: {"id":"run_') and not created.is_set():
                        run_id["id"] = line.split('"')[3]
                        created.set()
                    if line == "event: thread.run.cancelled":
                        ended["at"] = time.monotonic()
        ended.setdefault("closed", time.monotonic())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert created.wait(15)
    assert wait_status(http, thread_id, run_id["id"], {"in_progress"}, 15)["status"] == "in_progress"
    time.sleep(0.5)
    started = time.monotonic()
    http.post(f"/threads/{thread_id}/runs/{run_id['id']}/cancel")
    reader.join(CANCEL_BOUND_S + 2)
    assert "at" in ended, f"no thread.run.cancelled yet: {[n for n, _ in parse(lines)]}"
    assert ended["at"] - started < CANCEL_BOUND_S
    names = [n for n, _ in parse(lines)]
    assert names[-3:] == ["thread.run.cancelling", "thread.run.cancelled", "done"]


@pytest.fixture(scope="module")
def expiring_server(server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI) -> Iterator[ServerHandle]:
    handle = server_factory.start(env=llm_env(fake_llm, THREADLINE_RUN_EXPIRES_AFTER="3"), backend=backend)
    yield handle
    handle.stop()


def test_expiry_interrupts_the_wait_for_the_first_token(expiring_server: ServerHandle, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(text="far too late", ttft_s=SLOW_S))
    with httpx.Client(base_url=expiring_server.base_url, headers=HEADERS, timeout=60) as http:
        thread_id = new_thread(http)
        run = http.post(f"/threads/{thread_id}/runs", json={"assistant_id": new_assistant(http)}).json()
        assert run["expires_at"] == run["created_at"] + 3
        run = wait_status(http, thread_id, run["id"], {"expired"}, 3 + CANCEL_BOUND_S)
        assert run["status"] == "expired"
        assert http.post(f"/threads/{thread_id}/messages", json={"role": "user", "content": "x"}).status_code == 200


@pytest.fixture
def two_processes(server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI) -> Iterator[list[ServerHandle]]:
    """Two server processes sharing one database (both started before any run exists)."""
    first = server_factory.prepare(env=llm_env(fake_llm), backend=backend)
    second = server_factory.prepare(env=llm_env(fake_llm), backend=backend)
    second.database_url = first.database_url
    first.start()
    second.start()
    yield [first, second]
    second.stop()
    first.stop()


@pytest.mark.parametrize("stream", [False, True], ids=["poll", "stream"])
def test_cancel_through_another_process(two_processes: list[ServerHandle], fake_llm: FakeOpenAI, stream: bool) -> None:
    executing, other = two_processes
    fake_llm.script(Reply(text="far too late", ttft_s=SLOW_S))
    with (
        httpx.Client(base_url=executing.base_url, headers=HEADERS, timeout=60) as a,
        httpx.Client(base_url=other.base_url, headers=HEADERS, timeout=60) as b,
    ):
        thread_id = new_thread(a)
        body: dict[str, Any] = {"assistant_id": new_assistant(a), "stream": stream}
        lines: list[str] = []
        reader = None
        if stream:

            def read() -> None:
                with httpx.Client(base_url=executing.base_url, headers=HEADERS, timeout=60) as c:
                    with c.stream("POST", f"/threads/{thread_id}/runs", json=body) as r:
                        lines.extend(r.iter_lines())

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            deadline = time.monotonic() + 15
            while not a.get(f"/threads/{thread_id}/runs").json()["data"] and time.monotonic() < deadline:
                time.sleep(0.05)
            run_id = a.get(f"/threads/{thread_id}/runs").json()["data"][0]["id"]
        else:
            run_id = a.post(f"/threads/{thread_id}/runs", json=body).json()["id"]
        assert wait_status(b, thread_id, run_id, {"in_progress"}, 15)["status"] == "in_progress"
        time.sleep(0.5)
        started = time.monotonic()
        assert b.post(f"/threads/{thread_id}/runs/{run_id}/cancel").json()["status"] == "cancelling"
        run = wait_status(b, thread_id, run_id, {"cancelled"}, CANCEL_BOUND_S)
        assert run["status"] == "cancelled", f"still {run['status']} after {time.monotonic() - started:.1f} s"
        if reader is not None:
            reader.join(CANCEL_BOUND_S)
            names = [n for n, _ in parse(lines)]
            assert names[-3:] == ["thread.run.cancelling", "thread.run.cancelled", "done"]
        # no stale write of the executing process brings the run back
        time.sleep(1.0)
        assert a.get(f"/threads/{thread_id}/runs/{run_id}").json()["status"] == "cancelled"


def test_sdk_cancel_helper_sees_cancelled(server: ServerHandle, fake_llm: FakeOpenAI, validator: Any) -> None:
    """The SDK's own polling (create, cancel, poll) ends well inside the bound."""
    fake_llm.script(Reply(text="far too late", ttft_s=SLOW_S))
    client = make_client(server.base_url, validator=validator)
    try:
        assistant = client.beta.assistants.create(model="gpt-4o")
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
        run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
        with httpx.Client(base_url=server.base_url, headers=HEADERS) as http:
            wait_status(http, thread.id, run.id, {"in_progress"}, 15)
        started = time.monotonic()
        client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
        run = client.beta.threads.runs.poll(run.id, thread_id=thread.id, poll_interval_ms=50)
        assert run.status == "cancelled"
        assert time.monotonic() - started < CANCEL_BOUND_S
    finally:
        client.close()
