"""`last_used_at` of project and admin keys: null until the key is used, then the time of a use (written beside
the request, at most once a minute per key and process)."""

from __future__ import annotations

import time

from support.sdk import raw_http_client

from .conftest import new_key, new_project


def eventually(read, deadline_s: float = 30.0):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + deadline_s
    while (value := read()) is None:
        assert time.monotonic() < deadline, "last_used_at was never written"
        time.sleep(0.1)
    return value


def test_project_key_last_used(admin, server, validator) -> None:  # noqa: ANN001
    pid = new_project(admin)["id"]
    created = new_key(admin, pid)
    path = f"/organization/projects/{pid}/api_keys/{created['api_key']['id']}"
    assert admin.get(path).json()["last_used_at"] is None
    before = int(time.time())
    with raw_http_client(server.base_url, api_key=created["api_key"]["value"], validator=validator) as client:
        for _ in range(5):
            assert client.get("/assistants").status_code == 200
    used = eventually(lambda: admin.get(path).json()["last_used_at"])
    assert before - 1 <= used <= int(time.time()) + 1
    listed = admin.get(f"/organization/projects/{pid}/api_keys").json()["data"]
    assert listed[0]["last_used_at"] == used


def test_admin_key_last_used(admin, server, validator) -> None:  # noqa: ANN001
    created = admin.post("/organization/admin_api_keys", json={"name": "used"}).json()
    path = f"/organization/admin_api_keys/{created['id']}"
    assert admin.get(path).json()["last_used_at"] is None
    with raw_http_client(server.base_url, api_key=created["value"], validator=validator) as client:
        assert client.get("/organization/projects").status_code == 200
    assert eventually(lambda: admin.get(path).json()["last_used_at"]) >= created["created_at"]
    admin.delete(path)
