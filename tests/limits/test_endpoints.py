"""The limits endpoints of the administration API over HTTP: rate limits, spend limits (organization, project),
spend alerts (organization, project); every response validated against OpenAI's spec, bad input answered 400/404."""

from __future__ import annotations

import pytest

from .conftest import MODELS

ALERT = {
    "threshold_amount": 100000,
    "currency": "USD",
    "interval": "month",
    "notification_channel": {"type": "email", "recipients": ["finance@example.com"], "subject_prefix": "Spend"},
}
PROJECT = "/organization/projects/proj_default"


def ok(response) -> dict:  # noqa: ANN001
    assert response.status_code == 200, response.text
    return response.json()


def test_rate_limits_list_every_model_unlimited_then_modified(admin) -> None:  # noqa: ANN001
    page = ok(admin.get(f"{PROJECT}/rate_limits"))
    assert page["object"] == "list" and page["has_more"] is False
    by_model = {r["model"]: r for r in page["data"]}
    assert set(MODELS) <= set(by_model)
    assert by_model["free-model"] == {
        "object": "project.rate_limit",
        "id": "rl-free-model",
        "model": "free-model",
        "max_requests_per_1_minute": 0,
        "max_tokens_per_1_minute": 0,
    }
    changed = ok(admin.post(f"{PROJECT}/rate_limits/rl-free-model", json={"max_requests_per_1_minute": 500}))
    assert changed["max_requests_per_1_minute"] == 500 and changed["max_tokens_per_1_minute"] == 0
    changed = ok(
        admin.post(
            f"{PROJECT}/rate_limits/rl-free-model", json={"max_tokens_per_1_minute": 9000, "max_images_per_1_minute": 3}
        )
    )
    assert changed["max_requests_per_1_minute"] == 500 and changed["max_tokens_per_1_minute"] == 9000
    assert changed["max_images_per_1_minute"] == 3
    listed = {r["model"]: r for r in ok(admin.get(f"{PROJECT}/rate_limits"))["data"]}
    assert listed["free-model"] == changed
    reset = {"max_requests_per_1_minute": 0, "max_tokens_per_1_minute": 0, "max_images_per_1_minute": 0}
    cleared = ok(admin.post(f"{PROJECT}/rate_limits/rl-free-model", json=reset))
    assert cleared["max_requests_per_1_minute"] == 0 and "max_images_per_1_minute" not in cleared


def test_rate_limits_pagination(admin) -> None:  # noqa: ANN001
    everything = [r["id"] for r in ok(admin.get(f"{PROJECT}/rate_limits"))["data"]]
    assert everything == sorted(everything) and len(everything) >= 4
    first = ok(admin.get(f"{PROJECT}/rate_limits", params={"limit": 2}))
    assert [r["id"] for r in first["data"]] == everything[:2] and first["has_more"] is True
    assert first["first_id"] == everything[0] and first["last_id"] == everything[1]
    rest = ok(admin.get(f"{PROJECT}/rate_limits", params={"after": first["last_id"], "limit": 100}))
    assert [r["id"] for r in rest["data"]] == everything[2:] and rest["has_more"] is False
    back = ok(admin.get(f"{PROJECT}/rate_limits", params={"before": everything[3], "limit": 2}))
    assert [r["id"] for r in back["data"]] == everything[1:3]


def test_rate_limit_errors(admin) -> None:  # noqa: ANN001
    missing = admin.get("/organization/projects/proj_nope/rate_limits")
    assert missing.status_code == 404 and "proj_nope" in missing.json()["error"]["message"]
    unknown = admin.post(f"{PROJECT}/rate_limits/rl-no-such-model", json={"max_requests_per_1_minute": 1})
    assert unknown.status_code == 404 and "rl-no-such-model" in unknown.json()["error"]["message"]
    for body, param in (
        ({"max_requests_per_1_minute": -1}, "max_requests_per_1_minute"),
        ({"max_requests_per_1_minute": "5"}, "max_requests_per_1_minute"),
        ({"max_requests_per_1_minute": 1.5}, "max_requests_per_1_minute"),
        ({"max_bananas_per_1_minute": 1}, "max_bananas_per_1_minute"),
    ):
        bad = admin.post(f"{PROJECT}/rate_limits/rl-free-model", json=body)
        assert bad.status_code == 400, (body, bad.text)
        assert bad.json()["error"]["param"] == param
    assert admin.get(f"{PROJECT}/rate_limits", params={"limit": 0}).status_code == 400
    assert admin.get(f"{PROJECT}/rate_limits", params={"limit": "x"}).status_code == 400


@pytest.mark.parametrize("base", ["/organization", PROJECT])
def test_spend_limit_lifecycle(admin, base: str) -> None:  # noqa: ANN001
    kind = "organization" if base == "/organization" else "project"
    assert admin.get(f"{base}/spend_limit").status_code == 404
    assert admin.delete(f"{base}/spend_limit").status_code == 404
    body = {"threshold_amount": 10000, "currency": "USD", "interval": "month"}
    created = ok(admin.post(f"{base}/spend_limit", json=body))
    assert created == {**body, "object": f"{kind}.spend_limit", "enforcement": {"status": "enforcing"}}
    assert ok(admin.get(f"{base}/spend_limit")) == created
    replaced = ok(admin.post(f"{base}/spend_limit", json={**body, "threshold_amount": 20000}))
    assert replaced["threshold_amount"] == 20000
    assert ok(admin.delete(f"{base}/spend_limit")) == {"object": f"{kind}.spend_limit.deleted", "deleted": True}
    assert admin.get(f"{base}/spend_limit").status_code == 404


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"threshold_amount": 0, "currency": "USD", "interval": "month"}, "threshold_amount"),
        ({"threshold_amount": 5, "currency": "EUR", "interval": "month"}, "currency"),
        ({"threshold_amount": 5, "currency": "USD", "interval": "week"}, "interval"),
        ({"threshold_amount": 5, "currency": "USD"}, "interval"),
        ({"threshold_amount": 5, "currency": "USD", "interval": "month", "extra": 1}, "extra"),
    ],
)
def test_spend_limit_bad_input(admin, body: dict, param: str) -> None:  # noqa: ANN001
    for base in ("/organization", PROJECT):
        bad = admin.post(f"{base}/spend_limit", json=body)
        assert bad.status_code == 400, bad.text
        assert bad.json()["error"]["param"] == param
    assert admin.get("/organization/projects/proj_nope/spend_limit").status_code == 404
    assert admin.post("/organization/projects/proj_nope/spend_limit", json=body).status_code in (400, 404)


@pytest.mark.parametrize("base", ["/organization", PROJECT])
def test_spend_alerts_lifecycle(admin, base: str) -> None:  # noqa: ANN001
    kind = "organization" if base == "/organization" else "project"
    made = [ok(admin.post(f"{base}/spend_alerts", json={**ALERT, "threshold_amount": 10**9 + i})) for i in range(3)]
    for alert in made:
        assert alert["object"] == f"{kind}.spend_alert" and alert["id"].startswith("alert_")
        assert alert["notification_channel"] == ALERT["notification_channel"]
    ids = [a["id"] for a in made]
    listed = ok(admin.get(f"{base}/spend_alerts"))
    assert [a["id"] for a in listed["data"]][-3:] == ids
    page = ok(admin.get(f"{base}/spend_alerts", params={"limit": 1, "after": ids[0]}))
    assert [a["id"] for a in page["data"]] == [ids[1]] and page["has_more"] is True
    desc = ok(admin.get(f"{base}/spend_alerts", params={"order": "desc", "limit": 2}))
    assert [a["id"] for a in desc["data"]] == [ids[2], ids[1]]
    before = ok(admin.get(f"{base}/spend_alerts", params={"before": ids[2], "limit": 1}))
    assert [a["id"] for a in before["data"]] == [ids[1]]
    assert ok(admin.get(f"{base}/spend_alerts/{ids[1]}")) == made[1]
    changed = ok(admin.post(f"{base}/spend_alerts/{ids[1]}", json={**ALERT, "threshold_amount": 7}))
    assert changed["threshold_amount"] == 7 and changed["id"] == ids[1]
    assert ok(admin.get(f"{base}/spend_alerts/{ids[1]}")) == changed
    for alert_id in ids:
        gone = ok(admin.delete(f"{base}/spend_alerts/{alert_id}"))
        assert gone == {"id": alert_id, "object": f"{kind}.spend_alert.deleted", "deleted": True}
    assert admin.get(f"{base}/spend_alerts/{ids[0]}").status_code == 404
    assert admin.delete(f"{base}/spend_alerts/{ids[0]}").status_code == 404
    assert admin.post(f"{base}/spend_alerts/{ids[0]}", json=ALERT).status_code == 404


def test_spend_alerts_are_scoped(admin) -> None:  # noqa: ANN001
    org = ok(admin.post("/organization/spend_alerts", json=ALERT))
    try:
        assert admin.get(f"{PROJECT}/spend_alerts/{org['id']}").status_code == 404
        assert org["id"] not in [a["id"] for a in ok(admin.get(f"{PROJECT}/spend_alerts"))["data"]]
        assert admin.get(f"/organization/projects/proj_nope/spend_alerts/{org['id']}").status_code == 404
    finally:
        ok(admin.delete(f"/organization/spend_alerts/{org['id']}"))


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"threshold_amount": -1}, "threshold_amount"),
        ({"currency": "usd"}, "currency"),
        ({"interval": "day"}, "interval"),
        ({"notification_channel": {"type": "sms", "recipients": []}}, "notification_channel.type"),
        ({"notification_channel": {"type": "email"}}, "notification_channel.recipients"),
        ({"notification_channel": {"type": "email", "recipients": "a@b.c"}}, "notification_channel.recipients"),
    ],
)
def test_spend_alert_bad_input(admin, change: dict, param: str) -> None:  # noqa: ANN001
    bad = admin.post(f"{PROJECT}/spend_alerts", json={**ALERT, **change})
    assert bad.status_code == 400, bad.text
    assert bad.json()["error"]["param"] == param
    assert admin.get(f"{PROJECT}/spend_alerts", params={"order": "sideways"}).status_code == 400
    assert admin.get(f"{PROJECT}/spend_alerts", params={"limit": 101}).status_code == 400


def test_a_project_key_cannot_change_limits(http) -> None:  # noqa: ANN001
    assert http.get(f"{PROJECT}/rate_limits").status_code == 401
    body = {"threshold_amount": 1, "currency": "USD", "interval": "month"}
    assert http.post("/organization/spend_limit", json=body).status_code == 401
