"""A server with an admin key, a THREADLINE_API_KEYS key (the default project) and the scripted fake LLM, fresh per
module; `admin` drives /v1/organization over raw HTTP, validating every response against the spec."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.fake_openai import FakeOpenAI
from support.llm import llm_server
from support.server import ServerFactory, ServerHandle

ADMIN_KEY = "sk-admin-projects-0123456789"
ENV_KEY = "sk-env-projects-0123456789"


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI) -> Iterator[ServerHandle]:
    yield from llm_server(
        server_factory, backend, fake_llm, THREADLINE_ADMIN_KEYS=ADMIN_KEY, THREADLINE_API_KEYS=ENV_KEY
    )


@pytest.fixture(autouse=True)
def _fresh_fake(fake_llm: FakeOpenAI) -> None:
    fake_llm.reset()


@pytest.fixture(scope="module")
def admin_key() -> str:
    return ADMIN_KEY


def new_project(admin, name: str = "Project") -> dict:  # noqa: ANN001
    response = admin.post("/organization/projects", json={"name": name})
    assert response.status_code == 200, response.text
    return response.json()


def new_key(admin, project_id: str, name: str = "svc") -> dict:  # noqa: ANN001
    """A service account of `project_id` and its key (`api_key.value`)."""
    response = admin.post(f"/organization/projects/{project_id}/service_accounts", json={"name": name})
    assert response.status_code == 200, response.text
    return response.json()
