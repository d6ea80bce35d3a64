"""Fixtures for the Conversations and Responses tests: a server on the scripted fake LLM (for the Assistants runs
that share the store), and the server's own database for inserting response rows the way the engine does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.fake_openai import FakeOpenAI
from support.llm import llm_server
from support.server import ServerFactory, ServerHandle
from threadline.store import Store


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI) -> Iterator[ServerHandle]:
    yield from llm_server(server_factory, backend, fake_llm)


@pytest.fixture(autouse=True)
def _fresh_fake(fake_llm: FakeOpenAI) -> None:
    fake_llm.reset()


@pytest.fixture(scope="module")
def db(server: ServerHandle) -> Iterator[Store]:
    """The server's database, for writing response rows directly (in any state a test needs)."""
    store = Store(server.database_url)
    yield store
    store.close()
