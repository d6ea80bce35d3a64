"""Fixtures for the third-party client tests (the OpenAI Agents SDK, openai 1.x Responses, the Vercel AI SDK): a
server on the scripted fake LLM, and `responses_api`, which skips a test while POST /v1/responses is not served."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.fake_openai import FakeOpenAI
from support.gates import require_responses
from support.llm import llm_server
from support.server import ServerFactory, ServerHandle


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI) -> Iterator[ServerHandle]:
    yield from llm_server(server_factory, backend, fake_llm)


@pytest.fixture(autouse=True)
def _fresh_fake(fake_llm: FakeOpenAI) -> None:
    fake_llm.reset()


@pytest.fixture
def responses_api(server: ServerHandle) -> ServerHandle:
    require_responses(server.base_url)
    return server
