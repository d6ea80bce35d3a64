"""Fixtures for the third-party client tests (the OpenAI Agents SDK, openai 1.x Responses, the Vercel AI SDK): a
server on the scripted fake LLM, and `responses_api`, which skips a test while POST /v1/responses is not served."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from fakes.fake_openai import FakeOpenAI
from support.llm import llm_server
from support.server import ServerFactory, ServerHandle

NOT_SERVED = "POST /v1/responses is not served yet (404): this client test runs once Responses execution lands"


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI) -> Iterator[ServerHandle]:
    yield from llm_server(server_factory, backend, fake_llm)


@pytest.fixture(autouse=True)
def _fresh_fake(fake_llm: FakeOpenAI) -> None:
    fake_llm.reset()


def responses_served(base_url: str) -> bool:
    """Whether the server routes POST /v1/responses: an unrouted path answers 404 `Invalid URL (...)`; a routed one
    answers an empty body with a 400."""
    r = httpx.post(f"{base_url}/responses", json={}, headers={"Authorization": "Bearer test"}, timeout=30)
    return not (r.status_code == 404 and "Invalid URL" in r.text)


@pytest.fixture
def responses_api(server: ServerHandle) -> ServerHandle:
    if not responses_served(server.base_url):
        pytest.skip(NOT_SERVED)
    return server
