"""Fixtures for run-engine tests: a scripted fake LLM (a real HTTP server) and a server pointed at it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from fakes.fake_openai import FakeOpenAI
from support.llm import llm_server
from support.server import ServerFactory, ServerHandle


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI) -> Iterator[ServerHandle]:
    yield from llm_server(server_factory, backend, fake_llm)


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


HEADERS = {"OpenAI-Beta": "assistants=v2", "Authorization": "Bearer test"}


@pytest.fixture
def http(server: ServerHandle) -> Iterator[httpx.Client]:
    """Raw HTTP to the server's /v1 (for what the SDK hides: exact bodies, statuses, concurrent writes)."""
    with httpx.Client(base_url=server.base_url, headers=HEADERS, timeout=60) as c:
        yield c


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll `predicate` every 30 ms until it returns something truthy or `timeout` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.03)
