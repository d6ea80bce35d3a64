"""Admin keys: /v1/organization/* needs one (a project key gets OpenAI's permission error), and
/v1/organization/admin_api_keys creates (the secret shown once), lists, retrieves and deletes them; a deleted key
is refused at once. Every response is validated against the spec."""

from __future__ import annotations

import os
import subprocess

from support.sdk import raw_http_client
from support.server import server_python

from .conftest import ADMIN_KEY, KEY_A


def test_organization_needs_an_admin_key(server, validator) -> None:  # noqa: ANN001
    with raw_http_client(server.base_url, api_key=KEY_A, validator=validator) as project:
        response = project.get("/organization/usage/completions", params={"start_time": 0})
        assert response.status_code == 401
        assert "insufficient permissions" in response.json()["error"]["message"]
        assert project.get("/organization/admin_api_keys").status_code == 401
    with raw_http_client(server.base_url, api_key=None, validator=validator) as anonymous:
        response = anonymous.get("/organization/costs", params={"start_time": 0})
        assert response.status_code == 401 and "didn't provide an API key" in response.json()["error"]["message"]
    with raw_http_client(server.base_url, api_key="sk-nobody-0123456789", validator=validator) as stranger:
        response = stranger.get("/organization/costs", params={"start_time": 0})
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    # An admin key acts in the default project unless an OpenAI-Project header names another (tests/projects).
    with raw_http_client(server.base_url, api_key=ADMIN_KEY, validator=validator) as admin:
        assert admin.get("/assistants").status_code == 200


def test_admin_key_lifecycle(admin, server, validator) -> None:  # noqa: ANN001
    created = admin.post("/organization/admin_api_keys", json={"name": "ops"})
    assert created.status_code == 200, created.text
    key = created.json()
    assert key["object"] == "organization.admin_api_key" and key["name"] == "ops"
    assert key["value"].startswith("sk-admin-") and key["redacted_value"].endswith(key["value"][-3:])
    assert key["value"] not in key["redacted_value"]
    shown = admin.get(f"/organization/admin_api_keys/{key['id']}").json()
    assert "value" not in shown and shown["id"] == key["id"] and shown["redacted_value"] == key["redacted_value"]
    listed = admin.get("/organization/admin_api_keys").json()
    assert key["id"] in [k["id"] for k in listed["data"]] and listed["object"] == "list"
    assert all("value" not in k for k in listed["data"])
    with raw_http_client(server.base_url, api_key=key["value"], validator=validator) as new_admin:
        assert new_admin.get("/organization/usage/completions", params={"start_time": 0}).status_code == 200
        deleted = admin.delete(f"/organization/admin_api_keys/{key['id']}")
        assert deleted.json() == {"id": key["id"], "object": "organization.admin_api_key.deleted", "deleted": True}
        assert new_admin.get("/organization/usage/completions", params={"start_time": 0}).status_code == 401
    assert admin.get(f"/organization/admin_api_keys/{key['id']}").status_code == 404
    assert admin.delete(f"/organization/admin_api_keys/{key['id']}").status_code == 404


def test_admin_key_pages(admin) -> None:  # noqa: ANN001
    ids = [admin.post("/organization/admin_api_keys", json={"name": f"k{i}"}).json()["id"] for i in range(3)]
    first = admin.get("/organization/admin_api_keys", params={"limit": 2}).json()
    assert first["has_more"] is True and len(first["data"]) == 2
    rest = admin.get("/organization/admin_api_keys", params={"limit": 100, "after": first["last_id"]}).json()
    seen = [k["id"] for k in first["data"] + rest["data"]]
    assert seen[-3:] == ids and rest["has_more"] is False
    newest = admin.get("/organization/admin_api_keys", params={"order": "desc", "limit": 1}).json()
    assert newest["data"][0]["id"] == ids[-1]
    for key_id in ids:
        admin.delete(f"/organization/admin_api_keys/{key_id}")


def test_cli_admin_keys(server) -> None:  # noqa: ANN001
    """`threadline keys add-admin` stores a key the running server accepts at once; revoke-admin locks it out."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
        where = ["--data-dir", str(server.data_dir), "--database-url", server.database_url]
        cmd = [server_python(), "-m", "threadline.cli", *args, *where]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)

    added = run("keys", "add-admin", "--name", "cli-admin")
    assert added.returncode == 0, added.stderr
    value = added.stdout.strip()
    assert value.startswith("sk-admin-")
    with raw_http_client(server.base_url, api_key=value) as cli_admin:
        assert cli_admin.get("/organization/costs", params={"start_time": 0}).status_code == 200
        listed = run("keys", "list-admin")
        assert "cli-admin" in listed.stdout and value not in listed.stdout
        key_id = next(line.split("\t")[0] for line in listed.stdout.splitlines() if "cli-admin" in line)
        revoked = run("keys", "revoke-admin", "--id", key_id)
        assert revoked.returncode == 0, revoked.stderr
        assert cli_admin.get("/organization/costs", params={"start_time": 0}).status_code == 401
