"""file_search in Responses (contract §3.3 c, §5.7): a `file_search_call` item with its queries, its results only
when `include` asks for `file_search_call.results`, the search events in order, and `file_citation` annotations
with the file's name; the stores are the tool's own `vector_store_ids`."""

from __future__ import annotations

import httpx
import openai

from fakes import Reply, ToolCallSpec
from fakes.fake_openai import FakeOpenAI
from support.sdk import vector_stores

from .test_create import MODEL, check_sequence, sse_events

DOCS = {
    "zebras.txt": b"Zebras have black and white stripes. The stripes help with thermoregulation and confuse flies.",
    "mars.md": b"# Mars\nMars is the fourth planet from the sun. Its red colour comes from iron oxide dust.",
}


def make_store(client: openai.OpenAI) -> tuple[str, dict[str, str]]:
    stores = vector_stores(client)
    store = stores.create(name="kb")
    ids = {
        name: stores.files.upload_and_poll(vector_store_id=store.id, file=(name, data)).id
        for name, data in DOCS.items()
    }
    return store.id, ids


def script(fake_llm: FakeOpenAI) -> None:
    fake_llm.script(
        Reply(tool_calls=[ToolCallSpec("file_search", '{"queries": ["zebra stripes"]}')]),
        Reply(text="They keep zebras cool 【0†zebras.txt】.", chunks=4),
    )


def test_file_search_call_with_results(client: openai.OpenAI, http: httpx.Client, fake_llm: FakeOpenAI) -> None:
    vs_id, ids = make_store(client)
    tool = {"type": "file_search", "vector_store_ids": [vs_id], "max_num_results": 2}
    script(fake_llm)
    response = client.responses.create(
        model=MODEL, input="Why stripes?", tools=[tool], include=["file_search_call.results"]
    )
    assert [o.type for o in response.output] == ["file_search_call", "message"]
    call = response.output[0]
    assert call.status == "completed" and call.queries == ["zebra stripes"] and call.id.startswith("fs_")
    assert call.results and call.results[0].file_id == ids["zebras.txt"] and call.results[0].filename == "zebras.txt"
    assert "thermoregulation" in call.results[0].text
    [citation] = response.output[1].content[0].annotations
    assert citation.type == "file_citation" and citation.file_id == ids["zebras.txt"]
    assert citation.filename == "zebras.txt"
    assert response.tools[0].max_num_results == 2
    # without include the results are left out, in the answer and when retrieved
    script(fake_llm)
    plain = client.responses.create(model=MODEL, input="Why stripes?", tools=[tool])
    assert plain.output[0].type == "file_search_call" and plain.output[0].results is None
    again = client.responses.retrieve(response.id, include=["file_search_call.results"])
    assert again.output[0].results is not None
    assert client.responses.retrieve(response.id).output[0].results is None
    # streamed: the item's search events in the contract's order
    script(fake_llm)
    body = {"model": MODEL, "input": "Why?", "tools": [tool], "stream": True, "include": ["file_search_call.results"]}
    events, done = sse_events(http, body)
    assert done
    check_sequence(events)
    kinds = [e["type"] for e in events]
    assert kinds[2:7] == [
        "response.output_item.added",
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
        "response.output_item.done",
    ]
    assert events[6]["item"]["results"][0]["filename"] == "zebras.txt"
    assert "response.output_text.annotation.added" in kinds
    assert kinds[-1] == "response.completed"
