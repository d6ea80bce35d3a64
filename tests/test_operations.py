"""Operating the server: /metrics, /health/ready, JSON logs with request and run ids, GenAI traces over OTLP."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fakes import Reply, ToolCallSpec
from fakes.fake_openai import FakeOpenAI
from support.llm import llm_env
from support.server import ServerFactory, ServerHandle

HEADERS = {"Authorization": "Bearer test", "OpenAI-Beta": "assistants=v2"}


def scrape(server: ServerHandle) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    response = httpx.get(f"{server.root_url}/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_run(http: httpx.Client, thread_id: str, run_id: str) -> dict:
    deadline = time.monotonic() + 60
    while True:
        run = http.get(f"/threads/{thread_id}/runs/{run_id}").json()
        if run["status"] not in ("queued", "in_progress", "cancelling"):
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.05)


def stream_run(server: ServerHandle, thread_id: str, assistant_id: str) -> str:
    """Run with stream=true to the end; returns the run id."""
    with httpx.Client(base_url=server.base_url, headers=HEADERS, timeout=60) as c:
        with c.stream("POST", f"/threads/{thread_id}/runs", json={"assistant_id": assistant_id, "stream": True}) as r:
            assert r.status_code == 200
            text = "".join(r.iter_text())
    created = text.split("event: thread.run.created\ndata: ", 1)[1].split("\n", 1)[0]
    assert "event: thread.run.completed" in text
    return json.loads(created)["id"]


@pytest.fixture(scope="module")
def ops_server(server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI) -> Iterator[ServerHandle]:
    handle = server_factory.start(env=llm_env(fake_llm, THREADLINE_LOG_FORMAT="json"), backend=backend)
    yield handle
    handle.stop()


@pytest.fixture
def api(ops_server: ServerHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ops_server.base_url, headers=HEADERS, timeout=60) as c:
        yield c


def test_metrics_count_requests_runs_and_model_calls(ops_server, api, fake_llm):
    before = scrape(ops_server)
    assistant = api.post("/assistants", json={"model": "gpt-4o"}).json()
    thread = api.post("/threads", json={"messages": [{"role": "user", "content": "hi"}]}).json()
    for _ in range(3):
        assert api.get(f"/threads/{thread['id']}").status_code == 200
    assert api.get("/threads/thread_missing").status_code == 404

    fake_llm.script(Reply(text="Hello there, friend", chunks=3, ttft_s=0.3, prompt_tokens=11))
    run_id = stream_run(ops_server, thread["id"], assistant["id"])
    fake_llm.script(Reply(text="Again", chunks=1))
    run = api.post(f"/threads/{thread['id']}/runs", json={"assistant_id": assistant["id"]}).json()
    assert wait_run(api, thread["id"], run["id"])["status"] == "completed"
    fake_llm.script(Reply(error=400, message="bad request upstream"))
    failed = api.post(f"/threads/{thread['id']}/runs", json={"assistant_id": assistant["id"]}).json()
    assert wait_run(api, thread["id"], failed["id"])["status"] == "failed"
    assert run_id.startswith("run_")

    after = scrape(ops_server)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # the route label is the template, never the raw path
    assert delta("threadline_http_requests_total", method="GET", route="/v1/threads/{thread_id}", status="200") == 3
    assert delta("threadline_http_requests_total", method="GET", route="/v1/threads/{thread_id}", status="404") == 1
    assert delta("threadline_http_requests_total", method="POST", route="/v1/assistants", status="200") == 1
    assert not any(re.search(r"thread_\w{6}", dict(labels).get("route", "")) for _, labels in after)
    assert delta("threadline_http_request_duration_seconds_count", method="GET", route="/v1/threads/{thread_id}") == 4

    assert delta("threadline_runs_total", status="completed") == 2
    assert delta("threadline_runs_total", status="failed") == 1
    assert delta("threadline_run_duration_seconds_count", status="completed") == 2

    genai = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o"}
    assert delta("gen_ai_server_time_to_first_token_seconds_count", **genai) == 2
    # the fake waited 0.3 s before its first token in the streamed run
    assert delta("gen_ai_server_time_to_first_token_seconds_sum", **genai) >= 0.25
    assert delta("gen_ai_client_operation_duration_seconds_count", **genai, error_type="") == 2
    assert delta("gen_ai_client_token_usage_count", **genai, gen_ai_token_type="input") == 2
    assert delta("gen_ai_client_token_usage_sum", **genai, gen_ai_token_type="input") >= 11
    assert delta("threadline_provider_errors_total", gen_ai_provider_name="openai", error_type="invalid_prompt") == 1

    for name in ("threadline_run_queue_depth", "threadline_run_queue_oldest_age_seconds"):
        assert value(after, name) == 0
    assert value(after, "threadline_runs_active", status="in_progress") == 0
    assert ("threadline_ingestion_backlog_files", ()) in after
    assert ("threadline_sandbox_sessions", (("state", "warm"),)) in after


def test_runs_ended_outside_the_executor_are_counted(ops_server, api, fake_llm):
    """A run cancelled while it waits for tool outputs ends in the cancel request, not in the executor."""
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
    assistant = api.post("/assistants", json={"model": "gpt-4o", "tools": [tool]}).json()
    thread = api.post("/threads", json={"messages": [{"role": "user", "content": "hi"}]}).json()
    before = scrape(ops_server)
    fake_llm.script(Reply(tool_calls=[ToolCallSpec("lookup", "{}")]))
    run = api.post(f"/threads/{thread['id']}/runs", json={"assistant_id": assistant["id"]}).json()
    assert wait_run(api, thread["id"], run["id"])["status"] == "requires_action"
    assert api.post(f"/threads/{thread['id']}/runs/{run['id']}/cancel").json()["status"] == "cancelled"
    after = scrape(ops_server)
    cancelled = value(after, "threadline_runs_total", status="cancelled")
    assert cancelled - value(before, "threadline_runs_total", status="cancelled") == 1


def test_queue_gauges_see_queued_runs(ops_server, api, fake_llm):
    """A run held in `queued` shows in the depth and age gauges (it is queued by writing the row, as a second
    process's API would; this process's workers only take runs from their own in-process queue)."""
    import sqlalchemy as sa

    assistant = api.post("/assistants", json={"model": "gpt-4o"}).json()
    thread = api.post("/threads", json={"messages": [{"role": "user", "content": "hi"}]}).json()
    fake_llm.script(Reply(text="x", ttft_s=0.1))
    run = api.post(f"/threads/{thread['id']}/runs", json={"assistant_id": assistant["id"]}).json()
    wait_run(api, thread["id"], run["id"])
    engine = sa.create_engine(ops_server.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE runs SET status='queued', created_at=:t WHERE id=:id"),
                {"t": int(time.time()) - 120, "id": run["id"]},
            )
        samples = scrape(ops_server)
        assert value(samples, "threadline_run_queue_depth") == 1
        assert value(samples, "threadline_runs_active", status="queued") == 1
        assert value(samples, "threadline_run_queue_oldest_age_seconds") >= 119
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE runs SET status='completed' WHERE id=:id"), {"id": run["id"]})
        engine.dispose()


def test_json_logs_carry_request_and_run_ids(ops_server, api, fake_llm):
    assistant = api.post("/assistants", json={"model": "gpt-4o"}).json()
    thread = api.post("/threads", json={"messages": [{"role": "user", "content": "hi"}]}).json()
    fake_llm.script(Reply(text="logged"))
    response = api.post(f"/threads/{thread['id']}/runs", json={"assistant_id": assistant["id"]})
    run = response.json()
    wait_run(api, thread["id"], run["id"])
    request_id = response.headers["x-request-id"]
    deadline = time.monotonic() + 10
    while True:
        records = []
        for line in ops_server.log_text().splitlines():
            if line.startswith("{"):
                records.append(json.loads(line))  # every structured line parses
        access = [r for r in records if r.get("request_id") == request_id]
        finished = [r for r in records if r.get("run_id") == run["id"] and r["logger"] == "threadline.runs"]
        if access and finished:
            break
        assert time.monotonic() < deadline, ops_server.log_tail()
        time.sleep(0.1)
    assert access[0]["route"] == "/v1/threads/{thread_id}/runs" and access[0]["status"] == 200
    assert access[0]["level"] == "INFO" and access[0]["time"]
    assert finished[0]["status"] == "completed" and finished[0]["message"] == "run completed"


def test_requests_refused_before_routing_keep_their_route(server_factory, backend):
    """401s are answered by the auth middleware before routing; unknown paths share one label."""
    handle = server_factory.start(env={"THREADLINE_API_KEYS": "sk-ops-test-key"}, backend=backend)
    try:
        assert httpx.get(f"{handle.base_url}/threads/thread_abc").status_code == 401
        assert httpx.get(f"{handle.root_url}/no/such/path/123").status_code == 404
        samples = scrape(handle)  # no key needed
        assert (
            value(
                samples, "threadline_http_requests_total", method="GET", route="/v1/threads/{thread_id}", status="401"
            )
            == 1
        )
        assert value(samples, "threadline_http_requests_total", method="GET", route="unmatched", status="404") == 1
    finally:
        handle.stop()


def test_metrics_can_be_turned_off(server_factory, backend):
    handle = server_factory.start(env={"THREADLINE_METRICS": "off"}, backend=backend)
    try:
        assert httpx.get(f"{handle.root_url}/metrics").status_code == 404
    finally:
        handle.stop()


def test_readiness_fails_while_the_database_is_gone(server_factory, backend):
    handle = server_factory.start(backend=backend)
    try:
        ready = httpx.get(f"{handle.root_url}/health/ready", timeout=30)
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["status"] == "ready"
        assert all(body["checks"][c]["ok"] for c in ("database", "migrations", "blob_store"))
        assert body["optional"]["embedder"]["state"] in ("loaded", "not_loaded")
        assert "state" in body["optional"]["code_interpreter"]

        with _database_gone(handle, server_factory):
            down = httpx.get(f"{handle.root_url}/health/ready", timeout=30)
            assert down.status_code == 503, down.text
            assert down.json()["status"] == "not_ready"
            assert httpx.get(f"{handle.root_url}/health").status_code == 200  # liveness is not readiness
        assert httpx.get(f"{handle.root_url}/health/ready", timeout=30).status_code == 200
    finally:
        handle.stop()


def test_requests_while_the_database_is_gone_get_a_retryable_503(server_factory, backend):
    """A request that can't reach the database (its pooled connection was cut, or connecting fails) gets a 503
    server_error, which the SDK retries, never a 500; once the database is back the next requests succeed."""
    if backend != "postgres":
        pytest.skip("an SQLite database can't go away under an open connection")
    handle = server_factory.start(backend=backend)
    try:
        client = httpx.Client(base_url=handle.base_url, headers={"OpenAI-Beta": "assistants=v2"}, timeout=30)
        assert client.post("/threads", json={}).status_code == 200  # a pooled connection, used a moment ago
        with _database_gone(handle, server_factory):
            for _ in range(3):
                answer = client.post("/threads", json={})
                assert answer.status_code == 503, answer.text
                assert answer.json()["error"]["type"] == "server_error"
                assert "database is unavailable" in answer.json()["error"]["message"]
        after = [client.post("/threads", json={}).status_code for _ in range(3)]
        assert after == [200, 200, 200], after
    finally:
        handle.stop()


class _database_gone:  # noqa: N801 - used as a context manager
    """SQLite: move the database file away (new connections find an empty database: schema not at head).
    PostgreSQL: refuse new connections to the database and end the open ones."""

    def __init__(self, handle: ServerHandle, factory: ServerFactory) -> None:
        self.handle, self.factory = handle, factory

    def __enter__(self) -> None:
        if self.handle.backend == "sqlite":
            db = Path(self.handle.database_url.removeprefix("sqlite:///"))
            self.moved = db.with_name("moved.db")
            shutil.move(db, self.moved)
        else:
            self.name = self.handle.database_url.rsplit("/", 1)[1]
            with self.factory.postgres.connect() as conn:
                conn.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (self.name,))

    def __exit__(self, *exc: Any) -> None:
        if self.handle.backend == "sqlite":
            db = Path(self.handle.database_url.removeprefix("sqlite:///"))
            db.unlink(missing_ok=True)
            shutil.move(self.moved, db)
        else:
            with self.factory.postgres.connect() as conn:
                conn.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[bytes]

    def do_POST(self) -> None:  # noqa: N802
        self.bodies.append(self.rfile.read(int(self.headers["content-length"])))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_traces_follow_genai_conventions(server_factory, backend, fake_llm):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    bodies: list[bytes] = []
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), type("R", (_Receiver,), {"bodies": bodies}))
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    env = llm_env(
        fake_llm,
        THREADLINE_TRACING="1",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"http://127.0.0.1:{receiver.server_port}/v1/traces",
        OTEL_BSP_SCHEDULE_DELAY="100",
        OTEL_SERVICE_NAME="threadline-test",
    )
    handle = server_factory.start(env=env, backend=backend)
    try:
        with httpx.Client(base_url=handle.base_url, headers=HEADERS, timeout=60) as api:
            tools = [{"type": "code_interpreter"}]
            assistant = api.post("/assistants", json={"model": "gpt-4o", "tools": tools}).json()
            thread = api.post("/threads", json={"messages": [{"role": "user", "content": "hi"}]}).json()
            fake_llm.script(
                Reply(tool_calls=[ToolCallSpec("code_interpreter", json.dumps({"code": "print(6 * 7)"}))]),
                Reply(text="traced", prompt_tokens=7),
            )
            run = api.post(f"/threads/{thread['id']}/runs", json={"assistant_id": assistant["id"]}).json()
            assert wait_run(api, thread["id"], run["id"])["status"] == "completed"
        deadline = time.monotonic() + 30
        while True:
            exported: list[Any] = []
            for body in list(bodies):
                request = ExportTraceServiceRequest.FromString(body)
                for rs in request.resource_spans:
                    service = {a.key: a.value.string_value for a in rs.resource.attributes}["service.name"]
                    assert service == "threadline-test"
                    exported += [s for ss in rs.scope_spans for s in ss.spans]
            spans = [s for s in exported if s.name == "chat gpt-4o"]
            tools = [s for s in exported if s.name == "execute_tool code_interpreter"]
            if len(spans) == 2 and tools:
                break
            assert time.monotonic() < deadline, [s.name for s in exported]
            time.sleep(0.1)
        tool_attrs = {a.key: a.value.string_value for a in tools[0].attributes}
        assert tool_attrs["gen_ai.operation.name"] == "execute_tool"
        assert tool_attrs["gen_ai.tool.name"] == "code_interpreter"
        assert tool_attrs["gen_ai.tool.call.id"].startswith("call_")
        spans.sort(key=lambda s: s.start_time_unix_nano)
        assert spans[0].end_time_unix_nano <= tools[0].start_time_unix_nano <= spans[1].start_time_unix_nano
        attrs = {a.key: a.value for a in spans[1].attributes}
        assert attrs["gen_ai.operation.name"].string_value == "chat"
        assert attrs["gen_ai.provider.name"].string_value == "openai"
        assert attrs["gen_ai.request.model"].string_value == "gpt-4o"
        assert attrs["gen_ai.response.model"].string_value == "gpt-4o"
        assert attrs["gen_ai.usage.input_tokens"].int_value == 7
        assert attrs["gen_ai.usage.output_tokens"].int_value > 0
        assert spans[1].end_time_unix_nano >= spans[1].start_time_unix_nano
    finally:
        handle.stop()
        receiver.shutdown()
