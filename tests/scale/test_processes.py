"""Scale-out: N `serve` processes and M `threadline worker` processes on one database, driven by the official SDK
through both API processes alternately; processes killed with SIGKILL mid-run; cancels crossing processes.

Queue and cancel polls are set to 60 s in the PostgreSQL tests, so a run picked up or cancelled within the (still
generous) bounds below was delivered by NOTIFY, not found by a poll.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fakes import Reply, ToolCallSpec
from support.sdk import make_client

from .conftest import Cluster, http_client, nothing_open, wait_run

NO_POLL = {"THREADLINE_QUEUE_POLL_S": "60", "THREADLINE_CANCEL_POLL_S": "60"}
PICKUP_BOUND_S = 15.0  # far below the 60 s poll
CANCEL_BOUND_S = 5.0
RECOVERY_BOUND_S = 20.0
TERMINAL = {"completed", "failed", "cancelled", "expired", "incomplete"}


def postgres_only(backend: str) -> None:
    if backend != "postgres":
        pytest.skip("several machines share a database only on PostgreSQL")


def slow(seconds: float = 10.0) -> Reply:
    words = int(seconds * 20)
    return Reply(text="slow " * words, chunks=words, tokens_per_s=20)


def test_sdk_across_two_api_and_two_worker_processes(cluster: Cluster, backend: str, fake_llm) -> None:  # noqa: ANN001
    postgres_only(backend)
    a = cluster.api(THREADLINE_RUN_WORKERS="0", **NO_POLL)
    b = cluster.api(THREADLINE_RUN_WORKERS="0", **NO_POLL)
    cluster.worker(**NO_POLL)
    cluster.worker(**NO_POLL)
    clients = [make_client(a.base_url), make_client(b.base_url)]
    assistant = clients[0].beta.assistants.create(model="gpt-4o")
    tool_assistant = clients[1].beta.assistants.create(
        model="gpt-4o", tools=[{"type": "function", "function": {"name": "lookup"}}]
    )
    runs: list[tuple[Any, str, str, str]] = []  # (client to check with, thread, run, expected status)

    # background runs: created on one API process, executed by a worker, polled through the other
    for i in range(6):
        creator, poller = clients[i % 2], clients[(i + 1) % 2]
        thread = creator.beta.threads.create(messages=[{"role": "user", "content": f"hello {i}"}])
        run = creator.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
        runs.append((poller, thread.id, run.id, "completed"))
    for poller, thread_id, run_id, _ in list(runs):
        deadline = time.monotonic() + PICKUP_BOUND_S
        while poller.beta.threads.runs.retrieve(run_id, thread_id=thread_id).status not in TERMINAL:
            assert time.monotonic() < deadline, "a queued run was not picked up by a worker"
            time.sleep(0.05)
        reply = poller.beta.threads.messages.list(thread_id=thread_id).data[0]
        assert reply.role == "assistant" and reply.content[0].text.value.startswith("You said: hello")

    # streaming: a thread created through A, its run streamed through B (executed by B)
    thread = clients[0].beta.threads.create(messages=[{"role": "user", "content": "stream me"}])
    with clients[1].beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        text = "".join(stream.text_deltas)
        final = stream.get_final_run()
    assert text == "You said: stream me" and final.status == "completed"
    runs.append((clients[0], thread.id, final.id, "completed"))

    # function calling: requires_action seen on A, outputs submitted through B, the rest executed by a worker
    thread = clients[0].beta.threads.create(messages=[{"role": "user", "content": "look it up"}])
    fake_llm.script(Reply(tool_calls=[ToolCallSpec("lookup", "{}")]), Reply(text="found it"))
    run = clients[0].beta.threads.runs.create(thread_id=thread.id, assistant_id=tool_assistant.id)
    deadline = time.monotonic() + PICKUP_BOUND_S
    while (run := clients[0].beta.threads.runs.retrieve(run.id, thread_id=thread.id)).status != "requires_action":
        assert run.status not in TERMINAL and time.monotonic() < deadline, run.status
        time.sleep(0.05)
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    clients[1].beta.threads.runs.submit_tool_outputs(
        run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call.id, "output": "42"}]
    )
    assert wait_run(http_client(a), thread.id, run.id, TERMINAL, PICKUP_BOUND_S)["status"] == "completed"
    runs.append((clients[1], thread.id, run.id, "completed"))

    # cancel through B of a run a worker executes (created through A)
    fake_llm.script(Reply(text="far too late", ttft_s=60))
    thread = clients[0].beta.threads.create(messages=[{"role": "user", "content": "never mind"}])
    run = clients[0].beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    with http_client(b) as hb:
        assert wait_run(hb, thread.id, run.id, {"in_progress"}, PICKUP_BOUND_S)["status"] == "in_progress"
        time.sleep(0.3)
        started = time.monotonic()
        assert clients[1].beta.threads.runs.cancel(run.id, thread_id=thread.id).status == "cancelling"
        done = wait_run(hb, thread.id, run.id, {"cancelled"}, CANCEL_BOUND_S)
        took = time.monotonic() - started
    assert done["status"] == "cancelled", f"still {done['status']} after {took:.1f} s"
    print(f"cancel through another process: cancelled after {took:.2f} s")
    runs.append((clients[0], thread.id, run.id, "cancelled"))

    for client, thread_id, run_id, expected in runs:
        assert client.beta.threads.runs.retrieve(run_id, thread_id=thread_id).status == expected
        with http_client(a) as ha:
            nothing_open(ha, thread_id, run_id)


def completed_runs(handle: Any) -> float:
    """Runs this process (alone: not a `serve --workers N` group) brought to `completed`, from its /metrics."""
    text = httpx.get(f"{handle.root_url}/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "threadline_runs_total" and sample.labels.get("status") == "completed":
                return sample.value
    return 0.0


def test_creator_with_a_free_worker_executes_its_runs_others_take_the_rest(
    cluster: Cluster,
    backend: str,
    fake_llm,  # noqa: ANN001
) -> None:
    """A background run is executed by the process that created it while a worker of that process is free (no
    other process is woken to race for it); when none is free, another process takes it at once (NOTIFY)."""
    postgres_only(backend)
    a = cluster.api(**NO_POLL)
    b = cluster.api(**NO_POLL)
    with http_client(a) as http:
        assistant = http.post("/assistants", json={"model": "gpt-4o"}).json()["id"]
        for i in range(8):
            thread_id = http.post("/threads", json={"messages": [{"role": "user", "content": f"x{i}"}]}).json()["id"]
            run = http.post(f"/threads/{thread_id}/runs", json={"assistant_id": assistant}).json()
            assert wait_run(http, thread_id, run["id"], TERMINAL, PICKUP_BOUND_S)["status"] == "completed"
    assert (completed_runs(a), completed_runs(b)) == (8, 0)

    busy = cluster.api(THREADLINE_RUN_WORKERS="1", **NO_POLL)
    with http_client(busy) as http:
        fake_llm.script(slow(30))
        thread_id = http.post("/threads", json={"messages": [{"role": "user", "content": "slow"}]}).json()["id"]
        slow_run = http.post(f"/threads/{thread_id}/runs", json={"assistant_id": assistant}).json()
        assert wait_run(http, thread_id, slow_run["id"], TERMINAL | {"in_progress"}, PICKUP_BOUND_S)["status"] == (
            "in_progress"
        )
        # its only worker is busy: the next run it creates goes to a or b
        other = http.post("/threads", json={"messages": [{"role": "user", "content": "next"}]}).json()["id"]
        run = http.post(f"/threads/{other}/runs", json={"assistant_id": assistant}).json()
        assert wait_run(http, other, run["id"], TERMINAL, PICKUP_BOUND_S)["status"] == "completed"
        assert completed_runs(a) + completed_runs(b) == 9 and completed_runs(busy) == 0
        http.post(f"/threads/{thread_id}/runs/{slow_run['id']}/cancel")
        assert wait_run(http, thread_id, slow_run["id"], TERMINAL, CANCEL_BOUND_S)["status"] == "cancelled"


def test_killed_worker_runs_end_failed_and_others_go_on(cluster: Cluster, backend: str, fake_llm) -> None:  # noqa: ANN001
    postgres_only(backend)
    api = cluster.api(THREADLINE_RUN_WORKERS="0")
    doomed = cluster.worker()
    with http_client(api) as http:
        assistant = http.post("/assistants", json={"model": "gpt-4o"}).json()["id"]
        started = []
        for i in range(3):
            fake_llm.script(slow(30))
            thread_id = http.post("/threads", json={"messages": [{"role": "user", "content": f"x{i}"}]}).json()["id"]
            run = http.post(f"/threads/{thread_id}/runs", json={"assistant_id": assistant}).json()
            started.append((thread_id, run["id"]))
        for thread_id, run_id in started:  # the only worker took them all
            assert wait_run(http, thread_id, run_id, {"in_progress"}, PICKUP_BOUND_S)["status"] == "in_progress"
        cluster.worker()  # a second worker joins, then the first dies
        time.sleep(0.5)
        doomed.kill()
        killed = time.monotonic()
        for thread_id, run_id in started:
            run = wait_run(http, thread_id, run_id, TERMINAL, RECOVERY_BOUND_S)
            assert run["status"] == "failed", run
            assert run["last_error"]["code"] == "server_error"
            nothing_open(http, thread_id, run_id)
        print(f"runs of the killed worker failed after {time.monotonic() - killed:.2f} s (lease 3 s)")
        # the surviving worker goes on with new runs
        thread_id = http.post("/threads", json={"messages": [{"role": "user", "content": "after"}]}).json()["id"]
        run = http.post(f"/threads/{thread_id}/runs", json={"assistant_id": assistant}).json()
        assert wait_run(http, thread_id, run["id"], TERMINAL, PICKUP_BOUND_S)["status"] == "completed"


def test_killed_api_process_mid_stream(cluster: Cluster, fake_llm) -> None:  # noqa: ANN001
    streaming = cluster.api()
    survivor = cluster.api()
    with http_client(survivor) as http:
        assistant = http.post("/assistants", json={"model": "gpt-4o"}).json()["id"]
        thread_id = http.post("/threads", json={"messages": [{"role": "user", "content": "x"}]}).json()["id"]
    fake_llm.script(slow(30))
    deltas = threading.Event()

    def read() -> None:
        try:
            with (
                http_client(streaming) as c,
                c.stream("POST", f"/threads/{thread_id}/runs", json={"assistant_id": assistant, "stream": True}) as r,
            ):
                for line in r.iter_lines():
                    if "thread.message.delta" in line:
                        deltas.set()
        except Exception:  # the server dies under the reader
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert deltas.wait(PICKUP_BOUND_S), "the stream never produced text"
    streaming.kill()
    killed = time.monotonic()
    with http_client(survivor) as http:
        run_id = http.get(f"/threads/{thread_id}/runs").json()["data"][0]["id"]
        run = wait_run(http, thread_id, run_id, TERMINAL, RECOVERY_BOUND_S)
        assert run["status"] == "failed" and run["last_error"]["code"] == "server_error", run
        print(f"run of the killed API process failed after {time.monotonic() - killed:.2f} s (lease 3 s)")
        nothing_open(http, thread_id, run_id)
        # the reply message was saved when it opened (its text is saved when it closes, which never came)
        message = http.get(f"/threads/{thread_id}/messages", params={"run_id": run_id}).json()["data"][0]
        assert message["status"] == "incomplete" and message["incomplete_details"] == {"reason": "run_failed"}
    reader.join(5)
