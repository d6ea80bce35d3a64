"""The projects administration API over HTTP (OpenAI's paths and shapes; every response validated against the
spec): projects, service accounts, project API keys and users; revocation applies to the next request."""

from __future__ import annotations

from support.sdk import raw_http_client

from .conftest import new_key, new_project


def test_project_lifecycle(admin) -> None:  # noqa: ANN001
    project = new_project(admin, "Lifecycle")
    pid = project["id"]
    assert project["object"] == "organization.project" and isinstance(project["created_at"], int)
    assert admin.get(f"/organization/projects/{pid}").json() == project
    renamed = admin.post(f"/organization/projects/{pid}", json={"name": "Renamed"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Renamed"
    archived = admin.post(f"/organization/projects/{pid}/archive")
    assert archived.status_code == 200
    body = archived.json()
    assert body["status"] == "archived" and body["archived_at"] >= project["created_at"]
    again = admin.post(f"/organization/projects/{pid}/archive").json()
    assert again["archived_at"] == body["archived_at"]
    refused = admin.post(f"/organization/projects/{pid}", json={"name": "Too late"})
    assert refused.status_code == 400 and "archived" in refused.json()["error"]["message"]
    refused = admin.post(f"/organization/projects/{pid}/service_accounts", json={"name": "late"})
    assert refused.status_code == 400
    assert admin.get(f"/organization/projects/{pid}").json()["status"] == "archived"


def test_project_list_pages_and_archived(admin) -> None:  # noqa: ANN001
    ids = [new_project(admin, f"P{i}")["id"] for i in range(3)]
    admin.post(f"/organization/projects/{ids[1]}/archive")
    seen, after = [], None
    while True:
        params = {"limit": 2, **({"after": after} if after else {})}
        page = admin.get("/organization/projects", params=params).json()
        seen += [p["id"] for p in page["data"]]
        assert page["object"] == "list" and len(page["data"]) <= 2
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert seen[0] == "proj_default" and ids[0] in seen and ids[2] in seen and ids[1] not in seen
    everything = admin.get("/organization/projects", params={"include_archived": "true", "limit": 100}).json()
    listed = [p["id"] for p in everything["data"]]
    assert ids[1] in listed and listed.index(ids[0]) < listed.index(ids[1]) < listed.index(ids[2])
    default = admin.get("/organization/projects/proj_default").json()
    assert default["name"] == "Default project" and default["status"] == "active"


def test_bad_requests_and_unknown_ids(admin) -> None:  # noqa: ANN001
    for path in (
        "/organization/projects/proj_nope",
        "/organization/projects/proj_nope/service_accounts",
        "/organization/projects/proj_nope/api_keys",
        "/organization/projects/proj_nope/users",
    ):
        response = admin.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["message"] == "No project found with id 'proj_nope'."
    assert admin.post("/organization/projects/proj_nope/archive").status_code == 404
    assert admin.post("/organization/projects/proj_nope", json={"name": "x"}).status_code == 404
    pid = new_project(admin)["id"]
    missing = admin.get(f"/organization/projects/{pid}/service_accounts/svc_acct_nope")
    assert missing.status_code == 404 and "svc_acct_nope" in missing.json()["error"]["message"]
    assert admin.delete(f"/organization/projects/{pid}/service_accounts/svc_acct_nope").status_code == 404
    assert admin.get(f"/organization/projects/{pid}/api_keys/key_nope").status_code == 404
    assert admin.delete(f"/organization/projects/{pid}/api_keys/key_nope").status_code == 404
    no_name = admin.post("/organization/projects", json={})
    assert no_name.status_code == 400 and no_name.json()["error"]["param"] == "name"
    assert admin.post("/organization/projects", json={"name": 7}).status_code == 400
    assert admin.get("/organization/projects", params={"limit": 0}).status_code == 400
    assert admin.get("/organization/projects", params={"include_archived": "maybe"}).status_code == 400
    for path in ("/organization/projects/proj_default", "/organization/projects/proj_default/archive"):
        refused = admin.post(path, json={"name": "Mine"})
        assert refused.status_code == 400 and "default project" in refused.json()["error"]["message"]


def test_service_accounts_and_keys(admin, server, validator) -> None:  # noqa: ANN001
    pid = new_project(admin, "Keys")["id"]
    first, second = new_key(admin, pid, "first"), new_key(admin, pid, "second")
    only = admin.post(
        f"/organization/projects/{pid}/service_accounts", json={"name": "bare", "create_service_account_only": True}
    ).json()
    assert only["api_key"] is None and only["role"] == "none"
    accounts = admin.get(f"/organization/projects/{pid}/service_accounts").json()
    assert [a["id"] for a in accounts["data"]] == [first["id"], second["id"], only["id"]]
    assert all("api_key" not in a for a in accounts["data"])
    shown = admin.get(f"/organization/projects/{pid}/service_accounts/{first['id']}").json()
    assert shown == {k: first[k] for k in ("object", "id", "name", "role", "created_at")}

    keys = admin.get(f"/organization/projects/{pid}/api_keys").json()
    assert [k["id"] for k in keys["data"]] == [first["api_key"]["id"], second["api_key"]["id"]]
    key = keys["data"][0]
    assert key["owner"]["type"] == "service_account" and key["owner"]["service_account"]["id"] == first["id"]
    assert key["redacted_value"] != first["api_key"]["value"] and "value" not in key
    assert admin.get(f"/organization/projects/{pid}/api_keys/{key['id']}").json()["id"] == key["id"]
    page = admin.get(f"/organization/projects/{pid}/api_keys", params={"limit": 1}).json()
    assert page["has_more"] is True and page["last_id"] == key["id"]

    with (
        raw_http_client(server.base_url, api_key=first["api_key"]["value"], validator=validator) as one,
        raw_http_client(server.base_url, api_key=second["api_key"]["value"], validator=validator) as two,
    ):
        assert one.get("/assistants").status_code == 200 and two.get("/assistants").status_code == 200
        deleted = admin.delete(f"/organization/projects/{pid}/api_keys/{key['id']}")
        assert deleted.json() == {"object": "organization.project.api_key.deleted", "id": key["id"], "deleted": True}
        refused = one.get("/assistants")
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
        gone = admin.delete(f"/organization/projects/{pid}/service_accounts/{second['id']}")
        assert gone.json() == {
            "object": "organization.project.service_account.deleted",
            "id": second["id"],
            "deleted": True,
        }
        assert two.get("/assistants").status_code == 401
    assert admin.get(f"/organization/projects/{pid}/api_keys").json()["data"] == []
    assert admin.get(f"/organization/projects/{pid}/service_accounts/{second['id']}").status_code == 404


def test_archiving_refuses_the_projects_keys(admin, server, validator) -> None:  # noqa: ANN001
    pid = new_project(admin, "Short-lived")["id"]
    value = new_key(admin, pid)["api_key"]["value"]
    with raw_http_client(server.base_url, api_key=value, validator=validator) as client:
        assert client.get("/assistants").status_code == 200
        admin.post(f"/organization/projects/{pid}/archive")
        refused = client.get("/assistants")
        assert refused.status_code == 401
        assert refused.json()["error"]["message"] == f"The project '{pid}' is archived: its API keys no longer work."


def test_the_operator_is_the_projects_user(admin) -> None:  # noqa: ANN001
    pid = new_project(admin)["id"]
    users = admin.get(f"/organization/projects/{pid}/users").json()
    assert [u["id"] for u in users["data"]] == ["user_operator"] and users["data"][0]["role"] == "owner"
    assert admin.get(f"/organization/projects/{pid}/users/user_operator").json()["role"] == "owner"
    assert admin.get(f"/organization/projects/{pid}/users/user_other").status_code == 404
