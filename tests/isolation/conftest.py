"""Two projects on one server: A and B, each with a service-account key, and B's objects of every kind.

Fixtures (module scope unless noted):
    server      a server with an admin key and the scripted fake LLM (sandbox warm pool 1: B has a container file)
    projects    {"A": {"id", "key"}, "B": ...}: two new projects and a service-account key of each
    keys        {"A": key, "B": key}: those keys
    admin       (function) raw HTTP with the admin key
    world       B's objects: {path parameter name: id} for every resource kind (see `make_world`)
    a_http / b_http   (function) raw HTTP as project A / B, validating every response against the spec
    a_client / b_client  (function) SDK clients as project A / B
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fakes import Reply
from fakes.fake_openai import FakeOpenAI
from support.llm import llm_server
from support.sdk import make_client, raw_http_client
from support.server import ServerFactory, ServerHandle

ADMIN_KEY = "sk-admin-isolation-0123456789"
MODEL = "gpt-4o-mini"
DOC = b"Zebras have black and white stripes. The stripes help with thermoregulation and confuse flies."


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI) -> Iterator[ServerHandle]:
    env = {
        "THREADLINE_ADMIN_KEYS": ADMIN_KEY,
        "THREADLINE_SANDBOX_WARM_POOL": "1",
        "THREADLINE_SANDBOX_TIMEOUT_S": "120",
    }
    yield from llm_server(server_factory, backend, fake_llm, **env)


@pytest.fixture(autouse=True)
def _fresh_fake(fake_llm: FakeOpenAI) -> None:
    fake_llm.reset()


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def projects(server: ServerHandle) -> dict[str, dict[str, str]]:
    """Two new projects, "A" and "B": {"id": project id, "key": a service-account key of it}."""
    out = {}
    with raw_http_client(server.base_url, api_key=ADMIN_KEY) as admin:
        for name in ("A", "B"):
            project = _ok(admin.post("/organization/projects", json={"name": f"isolation {name}"}))
            account = _ok(admin.post(f"/organization/projects/{project['id']}/service_accounts", json={"name": "svc"}))
            out[name] = {"id": project["id"], "key": account["api_key"]["value"]}
    return out


@pytest.fixture(scope="module")
def keys(projects: dict[str, dict[str, str]]) -> dict[str, str]:
    return {name: p["key"] for name, p in projects.items()}


@pytest.fixture(scope="module")
def admin_key() -> str:
    return ADMIN_KEY


@pytest.fixture
def a_http(server: ServerHandle, keys: dict[str, str], validator) -> Iterator[httpx.Client]:  # noqa: ANN001
    with raw_http_client(server.base_url, api_key=keys["A"], validator=validator) as c:
        yield c


@pytest.fixture
def b_http(server: ServerHandle, keys: dict[str, str], validator) -> Iterator[httpx.Client]:  # noqa: ANN001
    with raw_http_client(server.base_url, api_key=keys["B"], validator=validator) as c:
        yield c


@pytest.fixture
def a_client(server: ServerHandle, keys: dict[str, str], validator):  # noqa: ANN001, ANN201
    c = make_client(server.base_url, api_key=keys["A"], validator=validator)
    yield c
    c.close()


@pytest.fixture
def b_client(server: ServerHandle, keys: dict[str, str], validator):  # noqa: ANN001, ANN201
    c = make_client(server.base_url, api_key=keys["B"], validator=validator)
    yield c
    c.close()


def wait_ingested(http: httpx.Client, vs_id: str, file_id: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = _ok(http.get(f"/vector_stores/{vs_id}/files/{file_id}"))["status"]
        if status != "in_progress":
            assert status == "completed"
            return
        time.sleep(0.1)
    raise AssertionError(f"{file_id} still in progress in {vs_id}")


def make_world(http: httpx.Client, fake_llm: FakeOpenAI) -> dict[str, str]:
    """Objects of every kind in one project (the one `http`'s key belongs to): {path parameter: id}, plus
    `cfile_id` (a container file), `vs_file_id` (the File in the vector store) and `item_id` (a conversation item)."""
    ids: dict[str, str] = {}
    file_id = _ok(http.post("/files", files={"file": ("zebras.txt", DOC)}, data={"purpose": "assistants"}))["id"]
    ids["file_id"] = ids["vs_file_id"] = file_id
    vs = _ok(http.post("/vector_stores", json={"name": "kb", "file_ids": [file_id]}))
    ids["vs_id"] = vs["id"]
    wait_ingested(http, vs["id"], file_id)
    batch = _ok(http.post(f"/vector_stores/{vs['id']}/file_batches", json={"file_ids": [file_id]}))
    ids["batch_id"] = batch["id"]
    wait_ingested(http, vs["id"], file_id)
    assistant = _ok(
        http.post(
            "/assistants",
            json={
                "model": MODEL,
                "tools": [{"type": "file_search"}],
                "tool_resources": {"file_search": {"vector_store_ids": [vs["id"]]}},
            },
        )
    )
    ids["assistant_id"] = assistant["id"]
    thread = _ok(
        http.post(
            "/threads",
            json={
                "messages": [
                    {
                        "role": "user",
                        "content": "hi",
                        "attachments": [{"file_id": file_id, "tools": [{"type": "code_interpreter"}]}],
                    }
                ]
            },
        )
    )
    ids["thread_id"] = thread["id"]
    fake_llm.script(Reply(text="hello from the other project"))
    run = _ok(http.post(f"/threads/{thread['id']}/runs", json={"assistant_id": assistant["id"], "stream": False}))
    deadline = time.monotonic() + 60
    while run["status"] in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.1)
        run = _ok(http.get(f"/threads/{thread['id']}/runs/{run['id']}"))
    assert run["status"] == "completed", run
    ids["run_id"] = run["id"]
    steps = _ok(http.get(f"/threads/{thread['id']}/runs/{run['id']}/steps"))["data"]
    ids["step_id"] = steps[0]["id"]
    messages = _ok(http.get(f"/threads/{thread['id']}/messages"))["data"]
    ids["message_id"] = messages[0]["id"]
    new_upload = {"filename": "u.txt", "purpose": "assistants", "bytes": 3, "mime_type": "text/plain"}
    upload = _ok(http.post("/uploads", json=new_upload))
    ids["upload_id"] = upload["id"]
    conversation = _ok(
        http.post("/conversations", json={"items": [{"type": "message", "role": "user", "content": "hello"}]})
    )
    ids["conversation_id"] = conversation["id"]
    ids["item_id"] = _ok(http.get(f"/conversations/{conversation['id']}/items"))["data"][0]["id"]
    fake_llm.script(Reply(text="a stored response"))
    response = _ok(http.post("/responses", json={"model": MODEL, "input": "hi"}))
    ids["response_id"] = response["id"]
    container = _ok(http.post("/containers", json={"name": "box"}))
    ids["container_id"] = container["id"]
    cfile = _ok(http.post(f"/containers/{container['id']}/files", files={"file": ("notes.txt", b"secret")}))
    ids["cfile_id"] = cfile["id"]
    return ids


@pytest.fixture(scope="module")
def world(server: ServerHandle, keys: dict[str, str], fake_llm: FakeOpenAI) -> dict[str, str]:
    """Project B's objects of every kind."""
    with raw_http_client(server.base_url, api_key=keys["B"]) as b:
        return make_world(b, fake_llm)
