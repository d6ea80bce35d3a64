"""Tool usage: embedding tokens of ingested files, file_search calls, vector store sizes per day, and the share of
a run's prompt that re-sent retrieved chunks; priced per the test price file."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from fakes import Reply, ToolCallSpec
from fakes.fake_openai import FakeOpenAI
from support.llm import llm_server
from support.sdk import make_client, vector_stores
from support.server import ServerFactory, ServerHandle

from .conftest import ADMIN_KEY, KEY_A, PRICES
from .test_usage_costs import get, totals

DOCS = {
    "zebras.txt": b"Zebras have black and white stripes. The stripes help with thermoregulation and confuse flies.",
    "mars.md": b"# Mars\nMars is the fourth planet from the sun. Its red colour comes from iron oxide dust.",
}


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI, price_file) -> Iterator[ServerHandle]:  # noqa: ANN001
    yield from llm_server(
        server_factory,
        backend,
        fake_llm,
        THREADLINE_ADMIN_KEYS=ADMIN_KEY,
        THREADLINE_API_KEYS=KEY_A,
        THREADLINE_PRICES_FILE=str(price_file),
        THREADLINE_MAINTENANCE_S="0.5",  # the vector store sizes are taken by the maintenance pass
    )


@pytest.fixture(scope="module")
def searched(server, fake_llm):  # noqa: ANN001, ANN201
    client = make_client(server.base_url, api_key=KEY_A)
    started = int(time.time()) - 60
    stores = vector_stores(client)
    store = stores.create(name="kb")
    for name, data in DOCS.items():
        assert stores.files.upload_and_poll(vector_store_id=store.id, file=(name, data)).status == "completed"
    assistant = client.beta.assistants.create(
        model="model-a",
        instructions="Answer from the files.",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Why do zebras have stripes?"}])
    fake_llm.script(
        Reply(tool_calls=[ToolCallSpec("file_search", '{"queries": ["zebra stripes"]}')], prompt_tokens=120),
        Reply(text="To keep cool.", prompt_tokens=480, completion_tokens=6),
    )
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "completed"
    size = stores.retrieve(store.id).usage_bytes
    client.close()
    return {"start": started, "run": run.id, "store": store.id, "size": size, "assistant": assistant.id}


def test_embedding_tokens(admin, searched) -> None:  # noqa: ANN001
    page = get(admin, "/organization/usage/embeddings", start_time=searched["start"], group_by=["model"])
    sums = totals(page, "model")
    assert len(sums) == 1
    (model,), row = next(iter(sums.items()))
    assert model and row["num_model_requests"] == 2 and row["input_tokens"] > 20  # two short files' chunks
    costs = get(admin, "/organization/costs", start_time=searched["start"], group_by=["line_item"])
    items = totals(costs, "line_item")
    assert items[(f"{model}, embeddings",)]["amount"] == 0  # the local model: unpriced, flagged
    flagged = [r for b in costs["data"] for r in b["results"] if r["line_item"] == f"{model}, embeddings"]
    assert flagged[0]["unpriced_models"] == [model]


def test_file_search_calls(admin, searched) -> None:  # noqa: ANN001
    page = get(admin, "/organization/usage/file_search_calls", start_time=searched["start"])
    assert totals(page)[()]["num_requests"] == 1
    by_assistant = get(
        admin, "/organization/usage/file_search_calls", start_time=searched["start"], group_by=["assistant_id"]
    )
    assert totals(by_assistant, "assistant_id") == {(searched["assistant"],): {"num_requests": 1}}
    by_store = get(
        admin, "/organization/usage/file_search_calls", start_time=searched["start"], group_by=["vector_store_id"]
    )
    assert totals(by_store, "vector_store_id") == {(searched["store"],): {"num_requests": 1}}
    costs = get(admin, "/organization/costs", start_time=searched["start"], group_by=["line_item"])
    items = totals(costs, "line_item")
    assert items[("file search tool calls",)]["amount"] == pytest.approx(PRICES["tools"]["file_search_call"])
    assert items[("model-a, input",)]["amount"] == pytest.approx(600 * 1.0 / 1e6)


def test_retrieved_chunks_in_the_run_cost(admin, searched) -> None:  # noqa: ANN001
    detail = get(admin, f"/organization/usage/runs/{searched['run']}")
    first, second = detail["turns"]
    assert first["prompt_tokens_by_source"]["retrieved_chunks"] == 0
    chunks = second["prompt_tokens_by_source"]["retrieved_chunks"]
    assert chunks > 10  # the search results were re-sent to the model
    assert second["cost"]["retrieved_chunks"] == pytest.approx(chunks * 1.0 / 1e6)
    assert detail["cost"]["input"] == pytest.approx(600 / 1e6)


def test_vector_store_bytes_per_day(admin, searched) -> None:  # noqa: ANN001
    deadline = time.monotonic() + 60
    while True:
        page = get(admin, "/organization/usage/vector_stores", start_time=searched["start"])
        if totals(page).get((), {}).get("usage_bytes") == searched["size"]:
            break
        assert time.monotonic() < deadline, page
        time.sleep(0.2)
    assert searched["size"] > 0
    by_store = get(
        admin, "/organization/usage/vector_stores", start_time=searched["start"], group_by=["vector_store_id"]
    )
    assert totals(by_store, "vector_store_id") == {(searched["store"],): {"usage_bytes": searched["size"]}}
    costs = get(admin, "/organization/costs", start_time=searched["start"], group_by=["line_item"])
    item = totals(costs, "line_item")[("vector store storage",)]
    assert item["quantity"] == pytest.approx(searched["size"] / 1e9)
    assert item["amount"] == pytest.approx(searched["size"] / 1e9 * PRICES["tools"]["vector_store_gb_day"])


def test_upstream_without_usage_still_counts(admin, server, fake_llm) -> None:  # noqa: ANN001
    """An upstream that reports no usage still leaves a row with tokens (the provider adapter's estimate)."""
    client = make_client(server.base_url, api_key=KEY_A)
    assistant = client.beta.assistants.create(model="model-b", instructions="Be brief.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Count my words please"}])
    fake_llm.script(Reply(text="Four words in reply", usage=False))
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    client.close()
    assert run.status == "completed"
    turn = get(admin, f"/organization/usage/runs/{run.id}")["turns"][0]
    assert turn["input_tokens"] > 0 and turn["output_tokens"] > 0
    assert sum(turn["prompt_tokens_by_source"].values()) > 0
