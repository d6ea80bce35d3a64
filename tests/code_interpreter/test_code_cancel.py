"""Cancelling a run interrupts the code it is executing in the sandbox: the run is `cancelled` within seconds
(not when `time.sleep(30)` ends), for pollers and stream readers, and the thread's session stays usable."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from fakes.fake_openai import FakeOpenAI
from support.llm import llm_server
from support.server import ServerFactory, ServerHandle

from .conftest import run_code

CANCEL_BOUND_S = 5.0
HEADERS = {"OpenAI-Beta": "assistants=v2", "Authorization": "Bearer test"}
SLEEPY = "import time\ntime.sleep(30)\nprint('woke up')"


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI) -> Iterator[ServerHandle]:
    yield from llm_server(
        server_factory, backend, fake_llm, THREADLINE_SANDBOX_TIMEOUT_S="60", THREADLINE_SANDBOX_WARM_POOL="1"
    )


@pytest.fixture
def http(server: ServerHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, headers=HEADERS, timeout=60) as c:
        yield c


def executing(http: httpx.Client, thread_id: str, run_id: str) -> None:
    """Wait until the run's code_interpreter call is running."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        steps = http.get(f"/threads/{thread_id}/runs/{run_id}/steps").json()["data"]
        if any(s["type"] == "tool_calls" for s in steps):
            time.sleep(1.0)  # the sandbox is sleeping now
            return
        time.sleep(0.05)
    raise AssertionError("the code_interpreter call never started")


def cancelled_within(http: httpx.Client, thread_id: str, run_id: str, bound: float) -> dict:
    deadline = time.monotonic() + bound
    while True:
        run = http.get(f"/threads/{thread_id}/runs/{run_id}").json()
        if run["status"] == "cancelled" or time.monotonic() > deadline:
            return run
        time.sleep(0.05)


def setup(http: httpx.Client, fake_llm: FakeOpenAI) -> tuple[str, str]:
    fake_llm.script(*run_code(SLEEPY, "never said"))
    assistant = http.post("/assistants", json={"model": "gpt-4o", "tools": [{"type": "code_interpreter"}]}).json()
    thread = http.post("/threads", json={"messages": [{"role": "user", "content": "sleep"}]}).json()
    return assistant["id"], thread["id"]


def test_cancel_interrupts_running_code(http: httpx.Client, fake_llm: FakeOpenAI) -> None:
    assistant_id, thread_id = setup(http, fake_llm)
    run = http.post(f"/threads/{thread_id}/runs", json={"assistant_id": assistant_id}).json()
    executing(http, thread_id, run["id"])
    started = time.monotonic()
    http.post(f"/threads/{thread_id}/runs/{run['id']}/cancel").raise_for_status()
    run = cancelled_within(http, thread_id, run["id"], CANCEL_BOUND_S)
    assert run["status"] == "cancelled", f"still {run['status']} after {time.monotonic() - started:.1f} s"
    step = http.get(f"/threads/{thread_id}/runs/{run['id']}/steps").json()["data"][0]
    assert step["status"] == "cancelled"

    # The session survives the interrupted cell and runs the next code at once (needs the sandbox's
    # cancellation-safe execute: the cell is interrupted, not waited for).
    fake_llm.reset()
    fake_llm.script(*run_code("print(6 * 7)", "42"))
    started = time.monotonic()
    run = http.post(f"/threads/{thread_id}/runs", json={"assistant_id": assistant_id}).json()
    deadline = time.monotonic() + 20
    while run["status"] not in ("completed", "failed", "cancelled", "expired", "incomplete"):
        assert time.monotonic() < deadline, run
        time.sleep(0.1)
        run = http.get(f"/threads/{thread_id}/runs/{run['id']}").json()
    assert run["status"] == "completed", run
    assert time.monotonic() - started < 15  # not after the 30 s sleep
    steps = http.get(f"/threads/{thread_id}/runs/{run['id']}/steps").json()["data"]
    call = next(s for s in steps if s["type"] == "tool_calls")["step_details"]["tool_calls"][0]
    assert call["code_interpreter"]["outputs"][0]["logs"].strip() == "42"


def test_cancel_reaches_a_stream_reader_while_code_runs(http: httpx.Client, fake_llm: FakeOpenAI) -> None:
    assistant_id, thread_id = setup(http, fake_llm)
    names: list[str] = []
    done = threading.Event()

    def read() -> None:
        body = {"assistant_id": assistant_id, "stream": True}
        with httpx.Client(base_url=http.base_url, headers=HEADERS, timeout=60) as c:
            with c.stream("POST", f"/threads/{thread_id}/runs", json=body) as r:
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        names.append(line[7:])
                        if line == "event: thread.run.cancelled":
                            done.set()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 15
    while not (runs := http.get(f"/threads/{thread_id}/runs").json()["data"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    run_id = runs[0]["id"]
    executing(http, thread_id, run_id)
    started = time.monotonic()
    http.post(f"/threads/{thread_id}/runs/{run_id}/cancel").raise_for_status()
    assert done.wait(CANCEL_BOUND_S), f"no thread.run.cancelled after {time.monotonic() - started:.1f} s: {names}"
    upto = names[: names.index("thread.run.cancelled") + 1]
    assert upto[-3:] == ["thread.run.cancelling", "thread.run.step.cancelled", "thread.run.cancelled"]
    assert json.dumps(names).count("thread.run.step.cancelled") == 1
