"""Another project's ids inside request bodies (tool_resources, attachments, image parts, store files, batches,
containers, previous responses, conversations, item references, prompts) are refused exactly like ids that do not
exist, so a run or response of one project can never read another's files or vector stores; and lists and
cursors never show another project's objects."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from fakes import Reply, ToolCallSpec
from fakes.fake_openai import FakeOpenAI

from .conftest import MODEL, _ok
from .test_foreign_ids import _masked, _random_like

F = "<foreign>"  # where a body names B's object (or, for the comparison, an unknown id of the same kind)

# (name, method, path with A's objects as {placeholders}, body, the `world` key of B's object F stands for)
CASES: list[tuple[str, str, str, Any, str]] = [
    ("run: assistant", "POST", "/threads/{thread_id}/runs", {"assistant_id": F}, "assistant_id"),
    ("thread and run: assistant", "POST", "/threads/runs", {"assistant_id": F}, "assistant_id"),
    (
        "thread and run: tool_resources vector store",
        "POST",
        "/threads/runs",
        {"assistant_id": "{assistant_id}", "tool_resources": {"file_search": {"vector_store_ids": [F]}}},
        "vs_id",
    ),
    (
        "thread and run: tool_resources file",
        "POST",
        "/threads/runs",
        {"assistant_id": "{assistant_id}", "tool_resources": {"code_interpreter": {"file_ids": [F]}}},
        "file_id",
    ),
    (
        "thread and run: attachment",
        "POST",
        "/threads/runs",
        {
            "assistant_id": "{assistant_id}",
            "thread": {
                "messages": [
                    {
                        "role": "user",
                        "content": "x",
                        "attachments": [{"file_id": F, "tools": [{"type": "file_search"}]}],
                    }
                ]
            },
        },
        "file_id",
    ),
    (
        "run: additional message attachment",
        "POST",
        "/threads/{thread_id}/runs",
        {
            "assistant_id": "{assistant_id}",
            "additional_messages": [
                {
                    "role": "user",
                    "content": "x",
                    "attachments": [{"file_id": F, "tools": [{"type": "code_interpreter"}]}],
                }
            ],
        },
        "file_id",
    ),
    (
        "thread: code_interpreter file",
        "POST",
        "/threads",
        {"tool_resources": {"code_interpreter": {"file_ids": [F]}}},
        "file_id",
    ),
    (
        "thread: vector store",
        "POST",
        "/threads",
        {"tool_resources": {"file_search": {"vector_store_ids": [F]}}},
        "vs_id",
    ),
    (
        "thread: vector store helper file",
        "POST",
        "/threads",
        {"tool_resources": {"file_search": {"vector_stores": [{"file_ids": [F]}]}}},
        "file_id",
    ),
    (
        "thread: modify tool_resources",
        "POST",
        "/threads/{thread_id}",
        {"tool_resources": {"file_search": {"vector_store_ids": [F]}}},
        "vs_id",
    ),
    (
        "message: attachment",
        "POST",
        "/threads/{thread_id}/messages",
        {"role": "user", "content": "x", "attachments": [{"file_id": F, "tools": [{"type": "file_search"}]}]},
        "file_id",
    ),
    (
        "message: image file",
        "POST",
        "/threads/{thread_id}/messages",
        {"role": "user", "content": [{"type": "image_file", "image_file": {"file_id": F}}]},
        "file_id",
    ),
    (
        "assistant: vector store",
        "POST",
        "/assistants",
        {"model": MODEL, "tool_resources": {"file_search": {"vector_store_ids": [F]}}},
        "vs_id",
    ),
    (
        "assistant: modify code_interpreter file",
        "POST",
        "/assistants/{assistant_id}",
        {"tool_resources": {"code_interpreter": {"file_ids": [F]}}},
        "file_id",
    ),
    ("vector store: file_ids", "POST", "/vector_stores", {"file_ids": [F]}, "file_id"),
    ("vector store: add file", "POST", "/vector_stores/{vs_id}/files", {"file_id": F}, "file_id"),
    ("vector store: batch", "POST", "/vector_stores/{vs_id}/file_batches", {"file_ids": [F]}, "file_id"),
    ("container: file_ids", "POST", "/containers", {"name": "x", "file_ids": [F]}, "file_id"),
    ("container: add file", "POST", "/containers/{container_id}/files", {"file_id": F}, "file_id"),
    (
        "response: previous_response_id",
        "POST",
        "/responses",
        {"model": MODEL, "input": "x", "previous_response_id": F},
        "response_id",
    ),
    (
        "response: conversation",
        "POST",
        "/responses",
        {"model": MODEL, "input": "x", "conversation": F},
        "conversation_id",
    ),
    (
        "response: input image",
        "POST",
        "/responses",
        {"model": MODEL, "input": [{"role": "user", "content": [{"type": "input_image", "file_id": F}]}]},
        "file_id",
    ),
    (
        "response: code_interpreter container",
        "POST",
        "/responses",
        {"model": MODEL, "input": "x", "tools": [{"type": "code_interpreter", "container": F}]},
        "container_id",
    ),
    (
        "response: prompt assistant",
        "POST",
        "/responses",
        {"model": MODEL, "input": "x", "prompt": {"id": F}},
        "assistant_id",
    ),
    (
        "input tokens: previous_response_id",
        "POST",
        "/responses/input_tokens",
        {"model": MODEL, "input": "x", "previous_response_id": F},
        "response_id",
    ),
    (
        "conversation: item reference",
        "POST",
        "/conversations/{conversation_id}/items",
        {"items": [{"type": "item_reference", "id": F}]},
        "item_id",
    ),
    (
        "new conversation: item reference",
        "POST",
        "/conversations",
        {"items": [{"type": "item_reference", "id": F}]},
        "item_id",
    ),
]


@pytest.fixture(scope="module")
def mine(server, keys) -> dict[str, str]:  # noqa: ANN001
    """Project A's own thread, assistant, vector store, container and conversation."""
    from support.sdk import raw_http_client

    with raw_http_client(server.base_url, api_key=keys["A"]) as a:
        return {
            "thread_id": _ok(a.post("/threads", json={}))["id"],
            "assistant_id": _ok(a.post("/assistants", json={"model": MODEL}))["id"],
            "vs_id": _ok(a.post("/vector_stores", json={"name": "mine"}))["id"],
            "container_id": _ok(a.post("/containers", json={"name": "mine"}))["id"],
            "conversation_id": _ok(a.post("/conversations", json={}))["id"],
        }


def _fill(value: Any, mine: dict[str, str], foreign: str) -> Any:
    text = json.dumps(value).replace(F, foreign)
    for name, object_id in mine.items():
        text = text.replace("{" + name + "}", object_id)
    return json.loads(text)


@pytest.mark.parametrize(("name", "method", "path", "body", "kind"), CASES, ids=[c[0] for c in CASES])
def test_a_foreign_reference_is_an_unknown_reference(
    name: str,
    method: str,
    path: str,
    body: Any,
    kind: str,
    a_http: httpx.Client,
    world: dict[str, str],
    mine: dict[str, str],
    fake_llm: FakeOpenAI,
) -> None:
    foreign = world[kind]
    unknown = _random_like(foreign)
    url = _fill(path, mine, "")
    got = a_http.request(method, url, json=_fill(body, mine, foreign))
    expected = a_http.request(method, url, json=_fill(body, mine, unknown))
    assert expected.status_code in (400, 404), (name, expected.text)
    assert got.status_code == expected.status_code, (name, got.text)
    assert _masked(got.text, {"x": foreign}) == _masked(expected.text, {"x": unknown})
    assert not fake_llm.requests, "the model was called"


def _ids(http: httpx.Client, path: str, **params: Any) -> set[str]:
    return {o["id"] for o in _ok(http.get(path, params={"limit": 100, **params}))["data"]}


def test_lists_are_disjoint(
    a_http: httpx.Client, b_http: httpx.Client, world: dict[str, str], mine: dict[str, str]
) -> None:
    for path, b_id in (
        ("/assistants", world["assistant_id"]),
        ("/files", world["file_id"]),
        ("/vector_stores", world["vs_id"]),
        ("/containers", world["container_id"]),
        ("/console/threads", world["thread_id"]),
    ):
        a_ids, b_ids = _ids(a_http, path), _ids(b_http, path)
        assert b_id in b_ids and b_id not in a_ids, path
        assert not a_ids & b_ids, path
    assert mine["assistant_id"] in _ids(a_http, "/assistants")
    assert world["file_id"] not in _ids(a_http, "/files", purpose="assistants")
    # a cursor naming B's object is an unknown cursor: the same page as a random one
    for path, b_id in (("/assistants", world["assistant_id"]), ("/files", world["file_id"])):
        foreign = _ok(a_http.get(path, params={"after": b_id}))
        unknown = _ok(a_http.get(path, params={"after": _random_like(b_id)}))
        assert foreign == unknown
    # the console's filter by assistant shows nothing of B's
    assert not _ids(a_http, "/console/threads", assistant_id=world["assistant_id"])
    assert world["thread_id"] in _ids(b_http, "/console/threads", assistant_id=world["assistant_id"])
    usage = _ok(a_http.get("/console/usage"))
    assert world["run_id"] not in {r["id"] for r in usage["top_runs"]}
    assert world["run_id"] in {r["id"] for r in _ok(b_http.get("/console/usage"))["top_runs"]}


def test_file_search_never_reads_another_projects_store(
    a_http: httpx.Client, b_http: httpx.Client, world: dict[str, str], fake_llm: FakeOpenAI
) -> None:
    """A response of A searching B's vector store finds what it finds in a store that does not exist: nothing; B
    searching its own store finds the text."""

    def search(http: httpx.Client, vs_id: str) -> tuple[dict, str]:
        fake_llm.reset()
        fake_llm.script(
            Reply(tool_calls=[ToolCallSpec("file_search", '{"queries": ["zebra stripes"]}')]), Reply(text="done")
        )
        body = {
            "model": MODEL,
            "input": "Why stripes?",
            "tools": [{"type": "file_search", "vector_store_ids": [vs_id]}],
            "include": ["file_search_call.results"],
        }
        response = _ok(http.post("/responses", json=body))
        tool_messages = [m for m in fake_llm.requests[-1]["messages"] if m["role"] == "tool"]
        return response["output"][0], tool_messages[0]["content"]

    own_call, own_output = search(b_http, world["vs_id"])
    assert own_call["results"] and "thermoregulation" in own_output
    foreign_call, foreign_output = search(a_http, world["vs_id"])
    unknown_call, unknown_output = search(a_http, _random_like(world["vs_id"]))
    assert foreign_call["results"] == unknown_call["results"] in (None, [])
    assert foreign_output == unknown_output and "thermoregulation" not in foreign_output
