"""The console and projects: a project key sees only its project; an admin key signs in, gets a project switcher and
sees each project's data, spend included, only while that project is chosen.

A server of its own (per backend): two projects created over HTTP with the admin key, each with a service-account
key, each with a thread and a priced run whose marker text must never show in the other's console.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from fakes import Reply
from fakes.fake_openai import FakeOpenAI
from support.server import ServerFactory, ServerHandle

from .conftest import ADMIN_KEY, Console, console_server, wait_until


@pytest.fixture(scope="module")
def server(
    server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI, price_file: Path
) -> Iterator[ServerHandle]:
    yield from console_server(server_factory, backend, fake_llm, price_file)


@dataclass
class Tenant:
    project_id: str
    name: str
    key: str
    thread_id: str
    run_id: str
    marker: str
    cost: float


def _http(server: ServerHandle, key: str, project: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}", "OpenAI-Beta": "assistants=v2"}
    if project:
        headers["OpenAI-Project"] = project
    return httpx.Client(base_url=server.base_url, headers=headers, timeout=30)


def _tenant(server: ServerHandle, fake_llm: FakeOpenAI, name: str, prompt_tokens: int) -> Tenant:
    with _http(server, ADMIN_KEY) as admin:
        project = admin.post("/organization/projects", json={"name": name})
        assert project.status_code == 200, project.text
        project_id = project.json()["id"]
        account = admin.post(f"/organization/projects/{project_id}/service_accounts", json={"name": f"{name} bot"})
        assert account.status_code == 200, account.text
        key = account.json()["api_key"]["value"]
    marker = f"secret of {name}"
    with _http(server, key) as api:
        assistant = api.post("/assistants", json={"model": "gpt-4o", "name": f"{name} assistant"}).json()
        thread = api.post("/threads", json={"messages": [{"role": "user", "content": marker}]}).json()
        fake_llm.script(Reply(text=f"Reply for {name}.", prompt_tokens=prompt_tokens, completion_tokens=1000))
        run = api.post(f"/threads/{thread['id']}/runs", json={"assistant_id": assistant["id"]}).json()
        done = wait_until(
            lambda: api.get(f"/threads/{thread['id']}/runs/{run['id']}").json()["status"] == "completed",
            what="the run",
        )
        assert done
    # $1,000 per million in, $2,000 per million out (conftest.PRICES)
    return Tenant(project_id, name, key, thread["id"], run["id"], marker, prompt_tokens / 1000 + 2.0)


@pytest.fixture(scope="module")
def tenants(server: ServerHandle, fake_llm: FakeOpenAI) -> tuple[Tenant, Tenant]:
    fake_llm.reset()
    return _tenant(server, fake_llm, "Alpha", 10_000), _tenant(server, fake_llm, "Beta", 20_000)


def _console(browser: Any, server: ServerHandle, shots: Path, backend: str, key: str) -> Console:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(f"sessionStorage.setItem('threadline.console.key', {key!r});")
    page = context.new_page()
    page.set_default_timeout(20_000)
    return Console(page, server, shots, backend)


def test_session_names_the_key_project(server, tenants):  # noqa: ANN001
    alpha, beta = tenants
    with _http(server, alpha.key) as api:
        session = api.get("/console/session").json()
    assert session["project"] == {"id": alpha.project_id, "name": "Alpha"} and session["projects"] is None
    with _http(server, ADMIN_KEY) as admin:
        session = admin.get("/console/session").json()
        chosen = admin.get("/console/session", headers={"OpenAI-Project": beta.project_id}).json()
    listed = {p["id"]: p["name"] for p in session["projects"]}
    assert listed[alpha.project_id] == "Alpha" and listed[beta.project_id] == "Beta"
    assert chosen["project"] == {"id": beta.project_id, "name": "Beta"}


def test_a_project_key_sees_only_its_project(browser, server, shots, backend, tenants):  # noqa: ANN001
    alpha, beta = tenants
    console = _console(browser, server, shots, backend, alpha.key)
    page = console.page
    try:
        console.go("#/threads")
        assert page.locator("#project-slot").text_content() == "Project: Alpha"
        listed = page.locator("main table").text_content()
        assert alpha.thread_id in listed and beta.thread_id not in listed
        console.go("#/usage?by=project")
        assert page.locator("dd.total-spend").text_content() == f"${alpha.cost:,.2f}"
        body = page.locator("main").text_content()
        assert alpha.run_id in body and beta.run_id not in body and beta.thread_id not in body
        assert "Beta" not in body
        # Beta's thread and run, asked for by id, are as absent as ids that never existed.
        console.go(f"#/threads/{beta.thread_id}")
        page.wait_for_selector("main h1:has-text('Not found')")
        assert f"No thread found with id '{beta.thread_id}'." in page.locator("main").text_content()
        assert beta.marker not in page.content()
        console.go(f"#/threads/{beta.thread_id}/runs/{beta.run_id}")
        page.wait_for_selector(f"main .error:has-text(\"No thread found with id '{beta.thread_id}'\")")
        assert beta.marker not in page.content() and f"${beta.cost:,.2f}" not in page.content()
        console.go(f"#/threads/{alpha.thread_id}")
        page.wait_for_selector(".messages .text")
        assert page.locator(".messages .text").first.text_content() == alpha.marker
        console.shot("project-key")
        assert console.errors == []
    finally:
        console.page.context.close()


def test_admin_key_switches_projects(browser, server, shots, backend, tenants):  # noqa: ANN001
    alpha, beta = tenants
    console = _console(browser, server, shots, backend, "")
    page = console.page
    try:
        page.goto(console.url)
        key = page.get_by_label("API key")
        key.fill(ADMIN_KEY)
        key.press("Enter")
        switcher = page.get_by_label("Project", exact=True)
        switcher.wait_for()
        options = switcher.locator("option").all_text_contents()
        assert "Alpha" in options and "Beta" in options
        for tenant, other in ((alpha, beta), (beta, alpha)):
            switcher.select_option(tenant.project_id)  # keyboard-reachable <select>, labelled "Project"
            page.wait_for_function(
                "p => sessionStorage.getItem('threadline.console.project') === p", arg=tenant.project_id
            )
            console.go("#/threads")
            rows = page.locator("main table")
            wait_until(lambda t=tenant, r=rows: t.thread_id in r.text_content(), what=f"{tenant.name}'s threads")
            assert other.thread_id not in rows.text_content()
            console.go("#/usage")
            assert page.locator("dd.total-spend").text_content() == f"${tenant.cost:,.2f}"
            assert other.run_id not in page.locator("main").text_content()
            console.go(f"#/threads/{other.thread_id}")
            page.wait_for_selector(f"main .error:has-text(\"No thread found with id '{other.thread_id}'\")")
            assert other.marker not in page.content()
            if tenant is beta:
                console.go("#/usage")
                console.assert_labelled()
                console.shot("project-switcher")
        # Every project at once (admin keys only): spend by project, and a link into the other project switches to it.
        console.go("#/usage?by=project&scope=all")
        assert page.locator("dd.total-spend").text_content() == f"${alpha.cost + beta.cost:,.2f}"
        for tenant in (alpha, beta):
            row = page.locator(f"tr[data-group='{tenant.name} ({tenant.project_id})']")
            assert row.locator("td.spend").text_content() == f"${tenant.cost:,.2f}"
        console.assert_labelled()
        console.shot("usage-all-projects")
        page.locator(f"a[href='#/threads/{alpha.thread_id}/runs/{alpha.run_id}']").first.click()
        page.wait_for_selector(f"main h1:has-text('{alpha.run_id}')")
        assert page.get_by_label("Project", exact=True).input_value() == alpha.project_id
        assert page.locator("dd.run-cost").text_content().startswith(f"${alpha.cost:,.2f}")
        assert console.errors == []
    finally:
        console.page.context.close()


def test_only_an_admin_key_sees_every_project(server, tenants):  # noqa: ANN001
    alpha, _ = tenants
    with _http(server, alpha.key) as api:
        refused = api.get("/console/usage", params={"scope": "all"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    with _http(server, ADMIN_KEY) as admin:
        every = admin.get("/console/usage", params={"scope": "all"}).json()
    assert {b["project_id"] for b in every["buckets"]} >= {p.project_id for p in tenants}
