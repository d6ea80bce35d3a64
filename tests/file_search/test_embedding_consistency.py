"""A text gets the same vector however it reaches the embedder: alone as a query, or in an ingestion batch."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.fake_openai import FakeOpenAI
from support.llm import llm_server
from support.server import ServerFactory, ServerHandle

from .conftest import search
from .test_vector_stores import make_store

# Lengths from one word to about 180 word pieces, each below the 200-token chunk size so one file is one chunk.
TEXTS = {
    "word.txt": "Photosynthesis",
    "line.txt": "Tidal forces from the moon raise two bulges in the oceans every day.",
    "para.txt": (
        "The Krebs cycle oxidises acetyl-CoA to carbon dioxide in the mitochondrial matrix. Each turn yields "
        "three NADH, one FADH2 and one GTP, and the reduced carriers feed the electron transport chain."
    ),
    "long.txt": " ".join(
        f"Observation {i}: the sample from borehole {i * 7} showed quartz, feldspar and traces of mica."
        for i in range(7)
    ),
    "list.txt": "Ingredients: flour, water, salt, yeast. Knead for ten minutes, rest for an hour, bake at 230 C.",
}


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI) -> Iterator[ServerHandle]:
    # Vector-only ranking: the score is the cosine between the query and the chunk vector.
    yield from llm_server(server_factory, backend, fake_llm, THREADLINE_SEARCH_MODE="vector")


def test_query_alone_matches_its_text_embedded_in_an_ingestion_batch(client, stores):
    docs = {name: text.encode() for name, text in TEXTS.items()}
    store, ids, batch = make_store(client, stores, docs)
    assert batch.status == "completed" and batch.file_counts.completed == len(TEXTS)
    for name, text in TEXTS.items():
        [top] = search(client, stores, store.id, query=text, max_num_results=1)
        assert top["file_id"] == ids[name]
        # The same text, embedded alone (query) and next to its batch-mates of other lengths (file), must give
        # the same vector: cosine 1 up to float rounding.
        assert top["score"] >= 0.99999, (name, top["score"])
