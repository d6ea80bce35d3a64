"""A project and a service-account key made over HTTP: the key works on the resource endpoints, acts in its
project (what it creates is recorded under it), and is refused on /v1/organization."""

from __future__ import annotations

import time

from fakes.fake_openai import Reply
from support.sdk import make_client, raw_http_client

from .conftest import ENV_KEY, new_key, new_project


def test_create_project_and_service_account(admin) -> None:  # noqa: ANN001
    project = new_project(admin, "Team A")
    assert project["id"].startswith("proj_") and project["name"] == "Team A"
    assert project["status"] == "active" and project["archived_at"] is None
    created = new_key(admin, project["id"], "bot")
    assert created["object"] == "organization.project.service_account" and created["role"] == "member"
    key = created["api_key"]
    assert key["value"].startswith("sk-svcacct-") and key["id"].startswith("key_")


def test_a_project_key_acts_in_its_project(admin, server, fake_llm, validator) -> None:  # noqa: ANN001
    project = new_project(admin, "Billing")
    value = new_key(admin, project["id"])["api_key"]["value"]
    started = int(time.time()) - 60
    client = make_client(server.base_url, api_key=value, validator=validator)
    assistant = client.beta.assistants.create(model="model-p")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    fake_llm.script(Reply(text="hello", prompt_tokens=11, completion_tokens=3))
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        stream.until_done()
        run = stream.current_run
    assert run is not None and run.status == "completed"
    client.close()
    page = admin.get(
        "/organization/usage/completions",
        params={"start_time": started, "group_by": ["project_id"], "models": ["model-p"]},
    ).json()
    results = [r for b in page["data"] for r in b["results"]]
    assert [(r["project_id"], r["input_tokens"]) for r in results] == [(project["id"], 11)]
    with raw_http_client(server.base_url, api_key=value, validator=validator) as project_http:
        refused = project_http.get("/organization/projects")
        assert refused.status_code == 401 and "insufficient permissions" in refused.json()["error"]["message"]


def test_the_environment_key_stays_in_the_default_project(server, validator) -> None:  # noqa: ANN001
    with raw_http_client(server.base_url, api_key=ENV_KEY, validator=validator) as env:
        assert env.get("/assistants").status_code == 200
