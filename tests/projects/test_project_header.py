"""The `OpenAI-Project` header: an admin key acts in the project it names (the default project without it); a
project key naming another project gets OpenAI's 401; an unknown or archived project is refused clearly."""

from __future__ import annotations

import time

from fakes.fake_openai import Reply
from support.sdk import make_client, raw_http_client

from .conftest import ADMIN_KEY, ENV_KEY, new_key, new_project


def _run_usage_project(admin, server, fake_llm, validator, model: str, **headers: str) -> list:  # noqa: ANN001
    """Make a streamed run on `model` with the admin key and `headers`; the projects its usage was recorded in."""
    started = int(time.time()) - 60
    client = make_client(server.base_url, api_key=ADMIN_KEY, validator=validator, default_headers=headers)
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    fake_llm.script(Reply(text="hello", prompt_tokens=7, completion_tokens=2))
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        stream.until_done()
        assert stream.current_run is not None and stream.current_run.status == "completed"
    client.close()
    page = admin.get(
        "/organization/usage/completions",
        params={"start_time": started, "group_by": ["project_id"], "models": [model]},
    ).json()
    return [r["project_id"] for b in page["data"] for r in b["results"]]


def test_an_admin_key_acts_in_the_named_project(admin, server, fake_llm, validator) -> None:  # noqa: ANN001
    pid = new_project(admin, "Switched")["id"]
    assert _run_usage_project(admin, server, fake_llm, validator, "model-h1", **{"OpenAI-Project": pid}) == [pid]
    assert _run_usage_project(admin, server, fake_llm, validator, "model-h2") == ["proj_default"]


def test_header_errors(admin, server, validator) -> None:  # noqa: ANN001
    pid = new_project(admin, "Mine")["id"]
    other = new_project(admin, "Other")["id"]
    value = new_key(admin, pid)["api_key"]["value"]
    with raw_http_client(server.base_url, api_key=value, validator=validator) as client:
        assert client.get("/assistants", headers={"OpenAI-Project": pid}).status_code == 200
        refused = client.get("/assistants", headers={"OpenAI-Project": other})
        assert refused.status_code == 401
        assert refused.json()["error"] == {
            "message": "OpenAI-Project header should match project for API key",
            "type": "invalid_request_error",
            "param": None,
            "code": "mismatched_project",
        }
    with raw_http_client(server.base_url, api_key=ENV_KEY, validator=validator) as env:
        assert env.get("/assistants", headers={"OpenAI-Project": "proj_default"}).status_code == 200
        assert env.get("/assistants", headers={"OpenAI-Project": pid}).status_code == 401
    with raw_http_client(server.base_url, api_key=ADMIN_KEY, validator=validator) as client:
        unknown = client.get("/assistants", headers={"OpenAI-Project": "proj_unknown"})
        assert unknown.status_code == 404 and "proj_unknown" in unknown.json()["error"]["message"]
        assert client.get("/assistants", headers={"OpenAI-Project": "x" * 5000}).status_code == 404
        assert client.get("/assistants", headers={"OpenAI-Project": other}).status_code == 200
        admin.post(f"/organization/projects/{other}/archive")
        archived = client.get("/assistants", headers={"OpenAI-Project": other})
        assert archived.status_code == 401 and "archived" in archived.json()["error"]["message"]


def test_the_console_switcher_sees_each_projects_objects(admin, server, validator) -> None:  # noqa: ANN001
    """What an admin key makes with `OpenAI-Project: P` is P's: P's own key sees it, the default project does not,
    and switching the header switches what the admin key lists."""
    pid = new_project(admin, "Switcher")["id"]
    value = new_key(admin, pid)["api_key"]["value"]
    headers = {"OpenAI-Project": pid}
    with raw_http_client(server.base_url, api_key=ADMIN_KEY, validator=validator) as console:
        made = console.post("/assistants", json={"model": "m", "name": "switched"}, headers=headers).json()
        assert made["id"] in [a["id"] for a in console.get("/assistants", headers=headers).json()["data"]]
        assert made["id"] not in [a["id"] for a in console.get("/assistants").json()["data"]]
        assert console.get(f"/assistants/{made['id']}").status_code == 404
    with raw_http_client(server.base_url, api_key=value, validator=validator) as own:
        assert own.get(f"/assistants/{made['id']}").json()["name"] == "switched"
    with raw_http_client(server.base_url, api_key=ENV_KEY, validator=validator) as default:
        assert default.get(f"/assistants/{made['id']}").status_code == 404
