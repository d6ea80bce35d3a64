"""Executions act for the project of their own row, whichever process or task runs them: a run executed by a
worker (not the request), a background response and the ingestion of a file record their usage under their
project, and their tools read that project's objects."""

from __future__ import annotations

import time

import httpx

from fakes import Reply, ToolCallSpec
from fakes.fake_openai import FakeOpenAI

from .conftest import DOC, _ok, wait_ingested


def _usage_projects(admin: httpx.Client, kind: str, since: int, **params: object) -> set[str]:
    page = _ok(
        admin.get(f"/organization/usage/{kind}", params={"start_time": since, "group_by": ["project_id"], **params})
    )
    return {r["project_id"] for b in page["data"] for r in b["results"]}


def _wait(http: httpx.Client, path: str, busy: tuple[str, ...]) -> dict:
    deadline = time.monotonic() + 60
    obj = _ok(http.get(path))
    while obj["status"] in busy and time.monotonic() < deadline:
        time.sleep(0.1)
        obj = _ok(http.get(path))
    return obj


def test_a_worker_run_acts_for_its_project(
    a_http: httpx.Client, admin: httpx.Client, projects: dict, fake_llm: FakeOpenAI
) -> None:
    """A queued run, claimed by a worker outside any request, searches its own project's store and records usage
    under that project."""
    since = int(time.time()) - 60
    file_id = _ok(a_http.post("/files", files={"file": ("z.txt", DOC)}, data={"purpose": "assistants"}))["id"]
    vs = _ok(a_http.post("/vector_stores", json={"file_ids": [file_id]}))
    wait_ingested(a_http, vs["id"], file_id)
    assistant = _ok(
        a_http.post(
            "/assistants",
            json={
                "model": "iso-worker-model",
                "tools": [{"type": "file_search"}],
                "tool_resources": {"file_search": {"vector_store_ids": [vs["id"]]}},
            },
        )
    )
    fake_llm.script(
        Reply(tool_calls=[ToolCallSpec("file_search", '{"queries": ["zebra stripes"]}')]),
        Reply(text="They keep cool."),
    )
    run = _ok(
        a_http.post(
            "/threads/runs",
            json={"assistant_id": assistant["id"], "thread": {"messages": [{"role": "user", "content": "Why?"}]}},
        )
    )
    run = _wait(a_http, f"/threads/{run['thread_id']}/runs/{run['id']}", ("queued", "in_progress"))
    assert run["status"] == "completed", run
    tool_output = next(m for m in fake_llm.requests[-1]["messages"] if m["role"] == "tool")["content"]
    assert "thermoregulation" in tool_output  # the worker read the project's own store
    assert _usage_projects(admin, "completions", since, models=["iso-worker-model"]) == {projects["A"]["id"]}
    assert projects["A"]["id"] in _usage_projects(admin, "file_search_calls", since)
    assert projects["A"]["id"] in _usage_projects(admin, "embeddings", since)


def test_a_background_response_acts_for_its_project(
    a_http: httpx.Client, world: dict[str, str], fake_llm: FakeOpenAI
) -> None:
    """A background response (executed by a worker, outside the request) searching another project's store finds
    nothing, as in a store that does not exist."""
    fake_llm.script(
        Reply(tool_calls=[ToolCallSpec("file_search", '{"queries": ["zebra stripes"]}')]), Reply(text="done")
    )
    body = {
        "model": "iso-background-model",
        "input": "Why stripes?",
        "background": True,
        "tools": [{"type": "file_search", "vector_store_ids": [world["vs_id"]]}],
        "include": ["file_search_call.results"],
    }
    response = _ok(a_http.post("/responses", json=body))
    response = _wait(a_http, f"/responses/{response['id']}", ("queued", "in_progress"))
    assert response["status"] == "completed", response
    tool_output = next(m for m in fake_llm.requests[-1]["messages"] if m["role"] == "tool")["content"]
    assert "thermoregulation" not in tool_output and "No results" in tool_output
    assert response["output"][0]["results"] in (None, [])
