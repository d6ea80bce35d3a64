"""Fixtures for run-engine tests: a scripted fake LLM (a real HTTP server) and a server pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.fake_openai import FakeOpenAI
from support.server import ServerFactory, ServerHandle

RUN_ENV = {"OPENAI_API_KEY": "test-key", "THREADLINE_POLL_AFTER_MS": "20"}


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI) -> Iterator[ServerHandle]:
    handle = server_factory.start(env={**RUN_ENV, "OPENAI_BASE_URL": fake_llm.base_url}, backend=backend)
    yield handle
    handle.stop()


@pytest.fixture(autouse=True)
def _fresh_fake(fake_llm: FakeOpenAI) -> None:
    fake_llm.reset()


@pytest.fixture
def assistant(client):  # noqa: ANN001, ANN201
    return client.beta.assistants.create(
        model="gpt-4o",
        instructions="You are a test assistant.",
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                },
            }
        ],
    )
