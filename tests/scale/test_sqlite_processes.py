"""Every core on the embedded SQLite default: `serve --workers 2` (runs, streaming, cancel), and the queued runs of a
process that died taken by another process at once (not after the lease)."""

from __future__ import annotations

import time

import pytest

from fakes import Reply
from support.sdk import make_client

from .conftest import Cluster, http_client, nothing_open, wait_run
from .test_processes import CANCEL_BOUND_S, PICKUP_BOUND_S, RECOVERY_BOUND_S, TERMINAL, slow


def sqlite_only(backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("SQLite-specific")


def test_serve_with_two_processes(cluster: Cluster, backend: str, fake_llm) -> None:  # noqa: ANN001
    sqlite_only(backend)
    server = cluster.api(args=["--workers", "2"])
    deadline = time.monotonic() + 60  # /health answers as soon as the first process is up
    while len(owners := list((server.data_dir / "threadline-owners").glob("*.lock"))) < 2:
        assert time.monotonic() < deadline, owners  # two processes, each with its own runtime
        time.sleep(0.1)
    with http_client(server) as http:  # metrics of both processes, aggregated (PROMETHEUS_MULTIPROC_DIR)
        assert "threadline_http_requests_total" in http.get(server.root_url + "/metrics").text
    assistant = make_client(server.base_url).beta.assistants.create(model="gpt-4o")
    # new connections land on either process
    for i in range(6):
        client = make_client(server.base_url)
        thread = client.beta.threads.create(messages=[{"role": "user", "content": f"hi {i}"}])
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
        )
        assert run.status == "completed"
        other = make_client(server.base_url)
        reply = other.beta.threads.messages.list(thread_id=thread.id).data[0]
        assert reply.content[0].text.value == f"You said: hi {i}"
        with other.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
            assert "".join(stream.text_deltas).startswith("You said:")
            assert stream.get_final_run().status == "completed"
    for _ in range(3):  # cancels through fresh connections, so some reach the other process
        fake_llm.script(Reply(text="far too late", ttft_s=60))
        client = make_client(server.base_url)
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
        run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
        with http_client(server) as http:
            assert wait_run(http, thread.id, run.id, {"in_progress"}, PICKUP_BOUND_S)["status"] == "in_progress"
            make_client(server.base_url).beta.threads.runs.cancel(run.id, thread_id=thread.id)
            assert wait_run(http, thread.id, run.id, {"cancelled"}, CANCEL_BOUND_S)["status"] == "cancelled"
            nothing_open(http, thread.id, run.id)


def test_queued_runs_of_a_killed_process_are_taken_at_once(cluster: Cluster, backend: str, fake_llm) -> None:  # noqa: ANN001
    sqlite_only(backend)
    # Leases of 60 s: what happens within RECOVERY_BOUND_S is owed to knowing the process is dead.
    creator = cluster.api(THREADLINE_RUN_WORKERS="1", THREADLINE_RUN_LEASE_S="60")
    other = cluster.api(THREADLINE_RUN_WORKERS="2", THREADLINE_RUN_LEASE_S="60")
    with http_client(creator) as http:
        assistant = http.post("/assistants", json={"model": "gpt-4o"}).json()["id"]
        fake_llm.script(slow(30))
        runs = []
        for i in range(3):
            thread_id = http.post("/threads", json={"messages": [{"role": "user", "content": f"q{i}"}]}).json()["id"]
            runs.append((thread_id, http.post(f"/threads/{thread_id}/runs", json={"assistant_id": assistant}).json()))
        busy_thread, busy = runs[0]
        assert wait_run(http, busy_thread, busy["id"], {"in_progress"}, PICKUP_BOUND_S)["status"] == "in_progress"
        time.sleep(1.5)  # several polls of the other process: the creator's queued runs stay its own
        for thread_id, run in runs[1:]:
            assert http.get(f"/threads/{thread_id}/runs/{run['id']}").json()["status"] == "queued"
    creator.kill()
    with http_client(other) as http:
        run = wait_run(http, busy_thread, busy["id"], TERMINAL, RECOVERY_BOUND_S)
        assert run["status"] == "failed" and run["last_error"]["code"] == "server_error", run
        nothing_open(http, busy_thread, busy["id"])
        for thread_id, queued in runs[1:]:
            assert wait_run(http, thread_id, queued["id"], TERMINAL, RECOVERY_BOUND_S)["status"] == "completed"
