"""Limits enforced through the real server: a project (or the organization) at its spend limit cannot start a
run or a response and the model is never called; a request rate limit answers OpenAI's 429 with retry-after; a
token rate limit fails a run before its model call; a spend alert fires once per period, logged, counted and
POSTed to the webhook."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime

import httpx
import openai
import pytest

from fakes import Reply
from support.sdk import make_client

PROJECT = "/organization/projects/proj_default"
LIMIT = {"currency": "USD", "interval": "month"}
ALERT = {"currency": "USD", "interval": "month", "notification_channel": {"type": "email", "recipients": ["a@b.c"]}}


def month_start() -> int:
    now = datetime.now(UTC)
    return int(datetime(now.year, now.month, 1, tzinfo=UTC).timestamp())


def spend_cents(admin) -> int:  # noqa: ANN001
    """This month's spend of the server (one project) from /v1/organization/costs, in whole cents (the test prices
    make every amount a whole number of cents)."""
    page = admin.get("/organization/costs", params={"start_time": month_start(), "limit": 31}).json()
    usd = sum(r["amount"]["value"] for bucket in page["data"] for r in bucket["results"])
    return round(usd * 100)


def run(client, model: str):  # noqa: ANN001, ANN201
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hello"}])
    return client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20)


def set_rate(admin, model: str, **fields: int) -> None:  # noqa: ANN001
    response = admin.post(f"{PROJECT}/rate_limits/rl-{model}", json=fields)
    assert response.status_code == 200, response.text


def test_spend_limit_stops_runs_and_responses_before_the_model(client, admin, fake_llm) -> None:  # noqa: ANN001
    fake_llm.script(Reply(text="ok", prompt_tokens=100, completion_tokens=10))  # 10 + 2 cents
    assert run(client, "priced-model").status == "completed"
    spent = spend_cents(admin)
    assert spent >= 12
    # Below the limit a run goes ahead (and its call may cross the limit) ...
    limit = {**LIMIT, "threshold_amount": spent + 1}
    assert admin.post(f"{PROJECT}/spend_limit", json=limit).status_code == 200
    try:
        fake_llm.script(Reply(text="ok", prompt_tokens=100, completion_tokens=10))
        assert run(client, "priced-model").status == "completed"
        assert spend_cents(admin) == spent + 12
        calls = len(fake_llm.requests)
        # ... at it, nothing reaches the model.
        failed = run(client, "priced-model")
        assert failed.status == "failed"
        assert failed.last_error.code == "rate_limit_exceeded"
        message = failed.last_error.message
        assert "Spend limit reached for project proj_default" in message
        assert f"${(spent + 12) / 100:.2f} spent this month" in message and f"${(spent + 1) / 100:.2f}" in message
        response = client.responses.create(model="priced-model", input="Hi")
        assert response.status == "failed" and response.error.code == "rate_limit_exceeded"
        assert "Spend limit reached for project proj_default" in response.error.message
        assert len(fake_llm.requests) == calls
    finally:
        assert admin.delete(f"{PROJECT}/spend_limit").status_code == 200
    assert run(client, "free-model").status == "completed"
    # The organization's limit applies to every project.
    assert admin.post("/organization/spend_limit", json={**LIMIT, "threshold_amount": spent + 12}).status_code == 200
    try:
        calls = len(fake_llm.requests)
        failed = run(client, "free-model")
        assert failed.status == "failed" and failed.last_error.code == "rate_limit_exceeded"
        assert "Spend limit reached for the organization" in failed.last_error.message
        assert len(fake_llm.requests) == calls
    finally:
        assert admin.delete("/organization/spend_limit").status_code == 200
    assert run(client, "free-model").status == "completed"


def test_request_rate_limit_answers_429_with_retry_after(client, admin, http, fake_llm) -> None:  # noqa: ANN001
    set_rate(admin, "rpm-model", max_requests_per_1_minute=1)
    try:
        first = run(client, "rpm-model")
        assert first.status == "completed"
        for path, body in (
            (f"/threads/{first.thread_id}/runs", {"assistant_id": first.assistant_id}),
            ("/threads/runs", {"assistant_id": first.assistant_id}),
            ("/responses", {"model": "rpm-model", "input": "Hi"}),
        ):
            refused = http.post(path, json=body)
            assert refused.status_code == 429, (path, refused.text)
            error = refused.json()["error"]
            assert error["code"] == "rate_limit_exceeded" and error["type"] == "requests"
            assert error["message"].startswith(
                "Rate limit reached for rpm-model in project proj_default on requests per min (RPM): Limit 1, "
                "Used 1, Requested 1. Please try again in "
            )
            wait = int(refused.headers["retry-after"])
            assert 1 <= wait <= 120
            assert f"try again in {wait}s" in error["message"]
            assert refused.headers["x-ratelimit-limit-requests"] == "1"
            assert refused.headers["x-ratelimit-remaining-requests"] == "0"
        with pytest.raises(openai.RateLimitError):
            client.beta.threads.runs.create(thread_id=first.thread_id, assistant_id=first.assistant_id)
        assert len(client.beta.threads.runs.list(thread_id=first.thread_id).data) == 1  # nothing was created
        assert len(fake_llm.requests) == 1
    finally:
        set_rate(admin, "rpm-model", max_requests_per_1_minute=0)
    again = client.beta.threads.runs.create_and_poll(
        thread_id=first.thread_id, assistant_id=first.assistant_id, poll_interval_ms=20
    )
    assert again.status == "completed"


def test_token_rate_limit_fails_a_run_before_the_model(client, admin, fake_llm) -> None:  # noqa: ANN001
    set_rate(admin, "tpm-model", max_tokens_per_1_minute=100)
    try:
        fake_llm.script(Reply(text="ok", prompt_tokens=100, completion_tokens=10))  # 110 counted for this minute
        assert run(client, "tpm-model").status == "completed"
        failed = run(client, "tpm-model")
        assert failed.status == "failed" and failed.last_error.code == "rate_limit_exceeded"
        assert re.match(
            r"Rate limit reached for tpm-model in project proj_default on tokens per min \(TPM\): Limit 100, "
            r"Used 1\d\d, Requested \d+\. Please try again in \d+s\.",
            failed.last_error.message,
        ), failed.last_error.message
        response = client.responses.create(model="tpm-model", input="Hi")
        assert response.status == "failed" and response.error.code == "rate_limit_exceeded"
        assert "tokens per min (TPM)" in response.error.message
        assert len(fake_llm.requests) == 1
    finally:
        set_rate(admin, "tpm-model", max_tokens_per_1_minute=0)
    assert run(client, "tpm-model").status == "completed"


def test_spend_alerts_fire_once_per_period(client, admin, webhook, server, fake_llm) -> None:  # noqa: ANN001
    spent = spend_cents(admin)
    made = [
        admin.post(f"{base}/spend_alerts", json={**ALERT, "threshold_amount": spent + 1}).json()
        for base in (PROJECT, "/organization")
    ]
    above = admin.post(f"{PROJECT}/spend_alerts", json={**ALERT, "threshold_amount": spent + 1000}).json()
    try:
        webhook.received.clear()
        fake_llm.script(Reply(text="ok", prompt_tokens=100, completion_tokens=10))
        assert run(client, "priced-model").status == "completed"
        deadline = time.monotonic() + 20
        while len(webhook.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        events = sorted(webhook.received, key=lambda e: e["project_id"] or "")
        assert [e["alert"]["id"] for e in events] == [made[1]["id"], made[0]["id"]]
        period = datetime.now(UTC).strftime("%Y-%m")
        for event in events:
            assert event["type"] == "spend_alert.triggered" and event["period"] == period
            assert event["spend_amount"] == spent + 12 and event["threshold_amount"] == spent + 1
            assert event["currency"] == "USD" and event["period_start"] == month_start()
        assert events[0]["project_id"] is None and events[1]["project_id"] == "proj_default"
        # Spend moves on, but each alert has fired for this month already; the one above stays quiet.
        fake_llm.script(Reply(text="ok", prompt_tokens=100, completion_tokens=10))
        assert run(client, "priced-model").status == "completed"
        time.sleep(1.5)
        assert len(webhook.received) == 2
        metrics = httpx.get(f"{server.root_url}/metrics").text
        assert 'threadline_spend_alerts_total{scope="proj_default"} 1.0' in metrics
        assert 'threadline_spend_alerts_total{scope="organization"} 1.0' in metrics
        assert 'threadline_spend_alert_webhooks_total{outcome="delivered"} 2.0' in metrics
        logged = [json.loads(line) for line in server.log_text().splitlines() if '"alert_id"' in line]
        assert {entry["alert_id"] for entry in logged} == {made[0]["id"], made[1]["id"]}
        assert all(entry["logger"] == "threadline.limits" and entry["period"] == period for entry in logged)
    finally:
        for alert, base in ((made[0], PROJECT), (made[1], "/organization"), (above, PROJECT)):
            admin.delete(f"{base}/spend_alerts/{alert['id']}")


def streamed_run(client, model: str):  # noqa: ANN001, ANN201
    """A run streamed to its end (executed by the request's process, in the request's project)."""
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hello"}])
    for _ in client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, stream=True):
        pass
    runs = client.beta.threads.runs.list(thread_id=thread.id).data
    assert len(runs) == 1
    return runs[0]


def test_a_projects_limits_are_its_own(client, admin, http, server, fake_llm, validator) -> None:  # noqa: ANN001
    project = admin.post("/organization/projects", json={"name": "Limited"}).json()
    pid = project["id"]
    account = admin.post(f"/organization/projects/{pid}/service_accounts", json={"name": "svc"}).json()
    other = make_client(server.base_url, api_key=account["api_key"]["value"], validator=validator)
    try:
        assert admin.post(f"/organization/projects/{pid}/spend_limit", json={**LIMIT, "threshold_amount": 1}).is_success
        fake_llm.script(Reply(text="ok", prompt_tokens=100, completion_tokens=10))
        assert streamed_run(other, "priced-model").status == "completed"  # 12 cents: over its 1 cent
        calls = len(fake_llm.requests)
        failed = streamed_run(other, "priced-model")
        assert failed.status == "failed" and failed.last_error.code == "rate_limit_exceeded"
        assert f"Spend limit reached for project {pid}: $0.12 spent" in failed.last_error.message
        assert len(fake_llm.requests) == calls
        assert streamed_run(client, "free-model").status == "completed"  # the default project is not limited
        assert admin.delete(f"/organization/projects/{pid}/spend_limit").is_success
        # The project's rate limit of a model is not the default project's.
        rpm = {"max_requests_per_1_minute": 1}
        assert admin.post(f"/organization/projects/{pid}/rate_limits/rl-free-model", json=rpm).is_success
        done = streamed_run(other, "free-model")
        assert done.status == "completed"
        with pytest.raises(openai.RateLimitError):
            other.beta.threads.runs.create(thread_id=done.thread_id, assistant_id=done.assistant_id)
        assert streamed_run(client, "free-model").status == "completed"
        assert streamed_run(client, "free-model").status == "completed"
        # Every change is in the audit log.
        logs = admin.get("/organization/audit_logs", params={"project_ids[]": pid, "limit": 100}).json()["data"]
        types = [(e["type"], e[e["type"]].get("changes_requested")) for e in logs]
        assert ("rate_limit.updated", {"max_requests_per_1_minute": 1}) in types
        assert ("project.updated", {"spend_limit": {**LIMIT, "threshold_amount": 1}}) in types
        assert ("project.updated", {"spend_limit": None}) in types
    finally:
        other.close()
