"""Fixtures for file_search tests: the server with the fake LLM and a short expiry 'day' for expiry tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.fake_openai import FakeOpenAI
from support.sdk import vector_stores
from support.server import ServerFactory, ServerHandle

DAY_S = 3


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI) -> Iterator[ServerHandle]:
    env = {
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": fake_llm.base_url,
        "THREADLINE_POLL_AFTER_MS": "50",
        "THREADLINE_EXPIRY_DAY_SECONDS": str(DAY_S),
    }
    handle = server_factory.start(env=env, backend=backend)
    yield handle
    handle.stop()


@pytest.fixture(autouse=True)
def _fresh_fake(fake_llm: FakeOpenAI) -> None:
    fake_llm.reset()


@pytest.fixture
def stores(client):  # noqa: ANN001, ANN201
    return vector_stores(client)


DOCS = {
    "zebras.txt": b"Zebras have black and white stripes. "
    b"The stripes help with thermoregulation and confuse biting flies.",
    "mars.md": b"# Mars\nMars is the fourth planet from the sun. "
    b"Its red colour comes from iron oxide dust on its surface.",
    "volcano.html": b"<html><body><h1>Volcanoes</h1><p>Mauna Loa in Hawaii is the largest active volcano on Earth."
    b"</p></body></html>",
    "bread.txt": b"Sourdough bread rises because wild yeast and lactobacilli "
    b"ferment the dough and release carbon dioxide.",
}
