"""The audit log: key, project and service-account changes (and admin keys') are recorded with their actor and
listed newest first in OpenAI's shape, filtered by type, project, actor, resource and time, page by page."""

from __future__ import annotations

import hashlib

from .conftest import ADMIN_KEY, new_key, new_project

ADMIN_KEY_ID = "key_" + hashlib.sha256(ADMIN_KEY.encode()).hexdigest()[:16]


def events(admin, **params) -> list[dict]:  # noqa: ANN001
    response = admin.get("/organization/audit_logs", params={"limit": 100, **params})
    assert response.status_code == 200, response.text
    return response.json()["data"]


def test_changes_are_recorded(admin) -> None:  # noqa: ANN001
    project = new_project(admin, "Audited")
    pid = project["id"]
    admin.post(f"/organization/projects/{pid}", json={"name": "Audited 2"})
    account = new_key(admin, pid, "robot")
    key_id = account["api_key"]["id"]
    admin.delete(f"/organization/projects/{pid}/api_keys/{key_id}")
    admin.delete(f"/organization/projects/{pid}/service_accounts/{account['id']}")
    admin.post(f"/organization/projects/{pid}/archive")
    admin_key = admin.post("/organization/admin_api_keys", json={"name": "audited"}).json()
    admin.delete(f"/organization/admin_api_keys/{admin_key['id']}")

    mine = events(admin, **{"project_ids[]": pid})
    assert [e["type"] for e in mine] == [
        "project.archived",
        "service_account.deleted",
        "api_key.deleted",
        "api_key.created",
        "service_account.created",
        "project.updated",
        "project.created",
    ]
    by_type = {e["type"]: e for e in mine}
    assert by_type["project.created"]["project.created"] == {"id": pid, "data": {"name": "Audited", "title": "Audited"}}
    assert by_type["project.updated"]["project.updated"]["changes_requested"] == {"title": "Audited 2"}
    assert by_type["api_key.deleted"]["api_key.deleted"] == {"id": key_id}
    assert by_type["service_account.created"]["service_account.created"]["id"] == account["id"]
    assert by_type["project.archived"]["project"] == {"id": pid, "name": "Audited 2"}
    for event in mine:
        assert event["actor"]["type"] == "api_key" and event["actor"]["api_key"]["id"] == ADMIN_KEY_ID
        assert event["id"].startswith("audit_log-")

    key_events = events(admin, **{"event_types[]": ["api_key.created", "api_key.deleted"]})
    assert [e["api_key.created"]["id"] for e in key_events if e["type"] == "api_key.created"][:2] == [
        admin_key["id"],
        key_id,
    ]
    assert [e["type"] for e in events(admin, **{"resource_ids[]": admin_key["id"]})] == [
        "api_key.deleted",
        "api_key.created",
    ]
    assert events(admin, **{"actor_ids[]": "key_someone_else"}) == []
    assert len(events(admin, **{"actor_ids[]": ADMIN_KEY_ID})) >= 9
    assert events(admin, **{"actor_emails[]": "nobody@example.com"}) == []


def test_pages_and_time_bounds(admin) -> None:  # noqa: ANN001
    pids = [new_project(admin, f"T{i}")["id"] for i in range(3)]
    created = events(admin, **{"event_types[]": "project.created", "project_ids[]": pids})
    assert [e["project"]["id"] for e in created] == pids[::-1]
    first = admin.get(
        "/organization/audit_logs", params={"limit": 2, "event_types[]": "project.created", "project_ids[]": pids}
    ).json()
    assert first["has_more"] is True and [e["project"]["id"] for e in first["data"]] == pids[:0:-1]
    rest = events(admin, after=first["last_id"], **{"event_types[]": "project.created", "project_ids[]": pids})
    assert [e["project"]["id"] for e in rest] == [pids[0]]
    newer = events(admin, before=rest[0]["id"], **{"event_types[]": "project.created", "project_ids[]": pids})
    assert [e["project"]["id"] for e in newer] == pids[:0:-1]
    at = created[0]["effective_at"]
    assert events(admin, **{"effective_at[gt]": at}) == []
    assert {e["id"] for e in created} <= {e["id"] for e in events(admin, **{"effective_at[gte]": at - 3600})}
    assert events(admin, **{"effective_at[lt]": 1}) == []
    assert admin.get("/organization/audit_logs", params={"effective_at[gt]": "soon"}).status_code == 400
    assert admin.get("/organization/audit_logs", params={"limit": 101}).status_code == 400
