"""`max_tool_calls` caps the built-in tool calls (file_search, code_interpreter) of a whole response; calls beyond
it are ignored (contract §2.1): not run, not in the output, not in the model's context, and once the cap is
reached the built-in tools are no longer offered, so the model answers with what it found."""

from __future__ import annotations

import openai

from fakes import Reply, ToolCallSpec
from fakes.fake_openai import FakeOpenAI

from .test_create import MODEL
from .test_file_search import make_store


def _search(query: str) -> ToolCallSpec:
    return ToolCallSpec("file_search", f'{{"queries": ["{query}"]}}')


def test_calls_beyond_the_cap_are_ignored(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    vs_id, _ = make_store(client)
    tools = [{"type": "file_search", "vector_store_ids": [vs_id]}]
    fake_llm.script(
        Reply(tool_calls=[_search("zebra stripes"), _search("mars colour")]),  # the second is over the cap
        Reply(tool_calls=[_search("more zebras")]),  # a whole turn over the cap
        Reply(text="Stripes keep zebras cool."),
    )
    response = client.responses.create(model=MODEL, input="Why stripes?", tools=tools, max_tool_calls=1)
    assert response.status == "completed" and response.max_tool_calls == 1
    assert [o.type for o in response.output] == ["file_search_call", "message"]
    assert response.output[0].queries == ["zebra stripes"]
    assert response.output_text.startswith("Stripes keep zebras cool.")
    first, second, third = fake_llm.requests
    [search_fn] = [t["function"]["name"] for t in first["tools"]]
    for later in (second, third):  # the cap is reached: file_search is no longer offered
        assert search_fn not in [t["function"]["name"] for t in later.get("tools") or []]
    tool_messages = [m for m in second["messages"] if m["role"] == "tool"]
    assert len(tool_messages) == 1 and "thermoregulation" in tool_messages[0]["content"]  # the model gets results
    assert [m for m in third["messages"] if m["role"] == "tool"] == tool_messages
    # under the cap every call runs
    fake_llm.script(Reply(tool_calls=[_search("zebra stripes"), _search("mars colour")]), Reply(text="ok"))
    both = client.responses.create(model=MODEL, input="Why?", tools=tools, max_tool_calls=2)
    assert [o.type for o in both.output] == ["file_search_call", "file_search_call", "message"]
