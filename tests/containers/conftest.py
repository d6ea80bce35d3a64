"""Fixtures for the Containers API: a server with the real sandbox (one warm sandbox) on the scripted fake LLM."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.fake_openai import FakeOpenAI
from support.llm import llm_server
from support.server import ServerFactory, ServerHandle


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI) -> Iterator[ServerHandle]:
    env = {"THREADLINE_SANDBOX_TIMEOUT_S": "120", "THREADLINE_SANDBOX_WARM_POOL": "1"}
    yield from llm_server(server_factory, backend, fake_llm, **env)


@pytest.fixture(autouse=True)
def _fresh_fake(fake_llm: FakeOpenAI) -> None:
    fake_llm.reset()
