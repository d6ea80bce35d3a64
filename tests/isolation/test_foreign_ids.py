"""Every resource endpoint, called by project A with project B's ids, answers exactly as for ids that do not exist:
the same status (404) and the same error body (the id aside); nothing of B's is shown or changed. The routes are
read from the app itself, so a new endpoint without an entry here fails `test_every_route_is_walked`."""

from __future__ import annotations

import re
import secrets
import tempfile
from typing import Any

import httpx
import pytest

from threadline.app import create_app
from threadline.config import Settings
from threadline.metrics import _leaf_routes

# Routes that hold no project's objects: the administration API (admin keys, per organization), model names.
NOT_PROJECT_ROUTES = ("/v1/organization/", "/v1/models/")

# (method, route) -> the request's body: JSON, or ("multipart", files) — valid, so that only the ids decide.
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/threads/{thread_id}/messages"): {"role": "user", "content": "x"},
    ("POST", "/v1/threads/{thread_id}/messages/{message_id}"): {"metadata": {"k": "v"}},
    ("POST", "/v1/threads/{thread_id}/runs"): {"assistant_id": "<own assistant>"},
    ("POST", "/v1/threads/{thread_id}/runs/{run_id}"): {"metadata": {"k": "v"}},
    ("POST", "/v1/threads/{thread_id}/runs/{run_id}/cancel"): None,
    ("POST", "/v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs"): {
        "tool_outputs": [{"tool_call_id": "call_x", "output": "y"}]
    },
    ("POST", "/v1/threads/{thread_id}"): {"metadata": {"k": "v"}},
    ("POST", "/v1/assistants/{assistant_id}"): {"metadata": {"k": "v"}},
    ("POST", "/v1/uploads/{upload_id}/parts"): ("multipart", {"data": ("part", b"abc")}),
    ("POST", "/v1/uploads/{upload_id}/complete"): {"part_ids": ["part_0123456789abcdef"]},
    ("POST", "/v1/uploads/{upload_id}/cancel"): None,
    ("POST", "/v1/vector_stores/{vs_id}"): {"name": "x"},
    ("POST", "/v1/vector_stores/{vs_id}/search"): {"query": "zebra"},
    ("POST", "/v1/vector_stores/{vs_id}/files"): {"file_id": "<own file>"},
    ("POST", "/v1/vector_stores/{vs_id}/files/{file_id}"): {"attributes": {"k": "v"}},
    ("POST", "/v1/vector_stores/{vs_id}/file_batches"): {"file_ids": ["<own file>"]},
    ("POST", "/v1/vector_stores/{vs_id}/file_batches/{batch_id}/cancel"): None,
    ("POST", "/v1/conversations/{conversation_id}"): {"metadata": {"k": "v"}},
    ("POST", "/v1/conversations/{conversation_id}/items"): {
        "items": [{"type": "message", "role": "user", "content": "x"}]
    },
    ("POST", "/v1/responses/{response_id}/cancel"): None,
    ("POST", "/v1/containers/{container_id}/files"): {"file_id": "<own file>"},
}


def resource_routes() -> list[tuple[str, str]]:
    """(method, path) of every HTTP route of the app that names an object in its path."""
    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app(Settings(data_dir=data_dir))
        out = []
        for route in _leaf_routes(app.routes):
            path = getattr(route, "path", "")
            if "{" not in path or not path.startswith("/v1/") or path.startswith(NOT_PROJECT_ROUTES):
                continue
            for method in sorted(getattr(route, "methods", None) or ()):
                if method != "HEAD":
                    out.append((method, path))
        app.state.runtime.store.close()
    return out


ROUTES = resource_routes()


def test_every_route_is_walked() -> None:
    """Each POST route with an object in its path has a body here (a new endpoint must be added)."""
    missing = [(m, p) for m, p in ROUTES if m == "POST" and (m, p) not in BODIES]
    assert not missing, f"add a body for {missing} to BODIES"
    assert ("GET", "/v1/threads/{thread_id}/messages") in ROUTES and len(ROUTES) >= 50


def _param_ids(path: str, world: dict[str, str]) -> dict[str, str]:
    """Path parameter -> B's id for that route (a container's `file_id` is a container file)."""
    out = {}
    for name in re.findall(r"{(\w+)}", path):
        if name == "file_id" and path.startswith("/v1/containers/"):
            out[name] = world["cfile_id"]
        else:
            out[name] = world[name]
    return out


def _random_like(object_id: str) -> str:
    """An id of the same kind and length that no project has."""
    prefix = re.match(r"^[a-z]+[_-]", object_id)
    head = prefix.group(0) if prefix else ""
    return head + secrets.token_hex(len(object_id))[: len(object_id) - len(head)]


def _call(http: httpx.Client, method: str, path: str, ids: dict[str, str], body: Any) -> httpx.Response:
    url = path.removeprefix("/v1")
    for name, value in ids.items():
        url = url.replace("{" + name + "}", value)
    if isinstance(body, tuple):
        return http.request(method, url, files=body[1])
    return http.request(method, url, json=body) if body is not None else http.request(method, url)


def _own(body: Any, own: dict[str, str]) -> Any:
    """The body with A's own objects filled in (a run needs A's assistant, a store add A's file)."""
    if isinstance(body, dict):
        return {k: _own(v, own) for k, v in body.items()}
    if isinstance(body, list):
        return [_own(v, own) for v in body]
    if body == "<own assistant>":
        return own["assistant_id"]
    if body == "<own file>":
        return own["file_id"]
    return body


def _masked(text: str, ids: dict[str, str]) -> str:
    for name, value in ids.items():
        text = text.replace(value, f"<{name}>")
    return text


@pytest.fixture(scope="module")
def own(server, keys) -> dict[str, str]:  # noqa: ANN001
    """A's own assistant and file, for bodies that need one."""
    from support.sdk import raw_http_client

    from .conftest import MODEL

    with raw_http_client(server.base_url, api_key=keys["A"]) as a:
        assistant = a.post("/assistants", json={"model": MODEL}).json()
        file = a.post("/files", files={"file": ("own.txt", b"own")}, data={"purpose": "assistants"}).json()
    return {"assistant_id": assistant["id"], "file_id": file["id"]}


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_a_foreign_id_is_an_unknown_id(
    method: str, path: str, a_http: httpx.Client, world: dict[str, str], own: dict[str, str]
) -> None:
    body = _own(BODIES.get((method, path)), own)
    foreign = _param_ids(path, world)
    unknown = {name: _random_like(value) for name, value in foreign.items()}
    got = _call(a_http, method, path, foreign, body)
    expected = _call(a_http, method, path, unknown, body)
    assert expected.status_code == 404, (method, path, expected.text)
    assert got.status_code == 404, (method, path, got.text)
    assert _masked(got.text, foreign) == _masked(expected.text, unknown)
    assert got.json()["error"]["type"] == "invalid_request_error"


def test_the_foreign_objects_are_untouched(b_http: httpx.Client, world: dict[str, str]) -> None:
    """After A's deletes, cancels and modifies of B's ids (run by the walk above), B's objects are as they were."""
    w = world
    for path in (
        f"/assistants/{w['assistant_id']}",
        f"/threads/{w['thread_id']}",
        f"/threads/{w['thread_id']}/messages/{w['message_id']}",
        f"/threads/{w['thread_id']}/runs/{w['run_id']}",
        f"/threads/{w['thread_id']}/runs/{w['run_id']}/steps/{w['step_id']}",
        f"/files/{w['file_id']}",
        f"/vector_stores/{w['vs_id']}",
        f"/vector_stores/{w['vs_id']}/files/{w['vs_file_id']}",
        f"/vector_stores/{w['vs_id']}/file_batches/{w['batch_id']}",
        f"/conversations/{w['conversation_id']}",
        f"/conversations/{w['conversation_id']}/items/{w['item_id']}",
        f"/responses/{w['response_id']}",
        f"/containers/{w['container_id']}",
        f"/containers/{w['container_id']}/files/{w['cfile_id']}",
    ):
        response = b_http.get(path)
        assert response.status_code == 200, (path, response.text)
        assert response.json().get("metadata") in (None, {}), path  # A's modify did not reach it
    assert b_http.get(f"/files/{w['file_id']}/content").content.startswith(b"Zebras")
    assert b_http.get(f"/containers/{w['container_id']}/files/{w['cfile_id']}/content").content == b"secret"
    assert b_http.post(f"/uploads/{w['upload_id']}/cancel").json()["status"] == "cancelled"  # still pending
