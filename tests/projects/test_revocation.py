"""Revocation across processes: two servers on one database; a key made on the first is used on both (so each has
verified and, on PostgreSQL, cached it), then deleting the key, deleting its service account, archiving its project
or deleting an admin key on the first locks it out of the second at the very next request."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from support.server import ServerFactory, ServerHandle

ADMIN_KEY = "sk-admin-revocation-0123456789"


@pytest.fixture(scope="module")
def pair(server_factory: ServerFactory, backend: str) -> Iterator[tuple[ServerHandle, ServerHandle]]:
    env = {"THREADLINE_ADMIN_KEYS": ADMIN_KEY}
    first = server_factory.prepare(env=env, backend=backend)
    second = server_factory.prepare(env=env, backend=backend)
    second.database_url = first.database_url
    first.start()
    second.start()
    yield first, second
    second.stop()
    first.stop()


def client(handle: ServerHandle, key: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}", "OpenAI-Beta": "assistants=v2"}
    return httpx.Client(base_url=handle.base_url, headers=headers, timeout=30)


def status(handle: ServerHandle, key: str) -> int:
    with client(handle, key) as http:
        return http.get("/assistants").status_code


def make_key(admin: httpx.Client) -> tuple[str, dict]:
    pid = admin.post("/organization/projects", json={"name": "revoked"}).json()["id"]
    created = admin.post(f"/organization/projects/{pid}/service_accounts", json={"name": "svc"}).json()
    return pid, created


def used_everywhere(pair: tuple[ServerHandle, ServerHandle], key: str) -> None:
    for handle in pair:
        for _ in range(3):  # verified, then served from the process's cache on PostgreSQL
            assert status(handle, key) == 200


@pytest.mark.parametrize("how", ["delete_key", "delete_service_account", "archive_project"])
def test_a_revoked_project_key_is_refused_at_once_everywhere(pair, how: str) -> None:  # noqa: ANN001
    first, second = pair
    with client(first, ADMIN_KEY) as admin:
        pid, created = make_key(admin)
        value = created["api_key"]["value"]
        used_everywhere(pair, value)
        if how == "delete_key":
            response = admin.delete(f"/organization/projects/{pid}/api_keys/{created['api_key']['id']}")
        elif how == "delete_service_account":
            response = admin.delete(f"/organization/projects/{pid}/service_accounts/{created['id']}")
        else:
            response = admin.post(f"/organization/projects/{pid}/archive")
        assert response.status_code == 200, response.text
    assert status(second, value) == 401
    assert status(first, value) == 401


def test_a_revoked_admin_key_is_refused_at_once_everywhere(pair) -> None:  # noqa: ANN001
    first, second = pair
    with client(first, ADMIN_KEY) as admin:
        created = admin.post("/organization/admin_api_keys", json={"name": "short"}).json()
        used_everywhere(pair, created["value"])
        assert admin.delete(f"/organization/admin_api_keys/{created['id']}").status_code == 200
    assert status(second, created["value"]) == 401
    with client(second, created["value"]) as gone:
        assert gone.get("/organization/projects").status_code == 401


def test_a_new_key_works_at_once_everywhere(pair) -> None:  # noqa: ANN001
    first, second = pair
    with client(second, ADMIN_KEY) as admin:
        _, created = make_key(admin)
    assert status(first, created["api_key"]["value"]) == 200


def test_an_admin_key_alone_closes_the_server(pair) -> None:  # noqa: ANN001
    """No project key exists (or every one was revoked): the resource endpoints still need a key."""
    for handle in pair:
        with httpx.Client(base_url=handle.base_url, headers={"OpenAI-Beta": "assistants=v2"}) as anonymous:
            assert anonymous.get("/assistants").status_code == 401
