"""`reasoning.effort` reaches an OpenAI-compatible upstream as Chat Completions' `reasoning_effort` (contract §7.4),
on every turn of the response; without it nothing is sent; the response echoes `reasoning`."""

from __future__ import annotations

import openai

from fakes import Reply, ToolCallSpec
from fakes.fake_openai import FakeOpenAI

from .test_create import MODEL
from .test_file_search import make_store


def test_reasoning_effort_is_sent_upstream(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    vs_id, _ = make_store(client)
    fake_llm.script(
        Reply(tool_calls=[ToolCallSpec("file_search", '{"queries": ["zebra stripes"]}')]), Reply(text="Cool.")
    )
    response = client.responses.create(
        model=MODEL,
        input="Why stripes?",
        tools=[{"type": "file_search", "vector_store_ids": [vs_id]}],
        reasoning={"effort": "low", "summary": "auto"},
    )
    assert response.status == "completed"
    assert [r.get("reasoning_effort") for r in fake_llm.requests] == ["low", "low"]
    assert response.reasoning is not None and response.reasoning.effort == "low"
    assert response.reasoning.summary == "auto"
    fake_llm.script(Reply(text="Hi."))
    plain = client.responses.create(model=MODEL, input="Hi")
    assert "reasoning_effort" not in fake_llm.requests[-1] and plain.reasoning is None
