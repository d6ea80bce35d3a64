"""Fixtures for file_search tests: the server with the fake LLM and a short expiry 'day' for expiry tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.fake_openai import FakeOpenAI
from support.llm import llm_server
from support.sdk import vector_stores
from support.server import ServerFactory, ServerHandle

DAY_S = 3


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI) -> Iterator[ServerHandle]:
    yield from llm_server(server_factory, backend, fake_llm, **{"THREADLINE_EXPIRY_DAY_SECONDS": str(DAY_S)})


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


def search(client, stores, vs_id: str, **body) -> list[dict]:  # noqa: ANN001, ANN003
    """POST /vector_stores/{id}/search; older SDKs (e.g. 1.55) have no `search` method, so fall back to a raw
    request through the same client (still validated against the spec)."""
    if hasattr(stores, "search"):
        return [r.model_dump() for r in stores.search(vector_store_id=vs_id, **body).data]
    import httpx

    response = client.post(f"/vector_stores/{vs_id}/search", body=body, cast_to=httpx.Response)
    return response.json()["data"]
