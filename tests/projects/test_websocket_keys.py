"""The Responses WebSocket checks project keys as the HTTP endpoints do: a project key works, one of an archived
project or one naming another project in `OpenAI-Project` gets the same 401 as over HTTP, in an error frame."""

from __future__ import annotations

import json

from websockets.sync.client import connect

from .conftest import new_key, new_project


def first_frame(server, key: str, *, send: bool = False, **headers: str) -> dict:  # noqa: ANN001
    """The first frame the server sends: at once when it refuses the key, else the answer to a bad request."""
    url = server.base_url.replace("http://", "ws://", 1) + "/responses"
    with connect(url, additional_headers={"Authorization": f"Bearer {key}", **headers}, open_timeout=30) as ws:
        if send:
            ws.send(json.dumps({"type": "response.create", "model": "m", "input": "hi", "tools": [{"type": "no"}]}))
        return json.loads(ws.recv(timeout=30))


def test_websocket_project_keys(admin, server) -> None:  # noqa: ANN001
    pid = new_project(admin, "Socket")["id"]
    other = new_project(admin, "Elsewhere")["id"]
    value = new_key(admin, pid)["api_key"]["value"]
    accepted = first_frame(server, value, send=True, **{"OpenAI-Project": pid})
    assert accepted["type"] == "error" and accepted["status"] == 400  # past authentication: the bad tool
    mismatched = first_frame(server, value, **{"OpenAI-Project": other})
    assert mismatched["status"] == 401 and mismatched["error"]["code"] == "mismatched_project"
    admin.post(f"/organization/projects/{pid}/archive")
    archived = first_frame(server, value)
    assert archived["status"] == 401 and archived["error"]["code"] == "project_archived"
