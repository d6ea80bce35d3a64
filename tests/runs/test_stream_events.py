"""Raw SSE event order and payloads, checked against the contract's canonical sequences and the spec."""

from __future__ import annotations

from fakes import Reply, ToolCallSpec
from support.sequences import AFTER_TOOL_OUTPUTS, TEXT_RUN

from .sse import collapse, names, post_stream


def test_text_run_sequence(client, assistant, fake_llm, server):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    fake_llm.script(Reply(text="Hello there, friend", chunks=3))
    events = post_stream(server.base_url, f"/threads/{thread.id}/runs", {"assistant_id": assistant.id})
    assert collapse(names(events)) == TEXT_RUN
    deltas = [d for n, d in events if n == "thread.message.delta"]
    assert len(deltas) == 3
    first = deltas[0]["delta"]["content"][0]
    assert first["index"] == 0 and first["type"] == "text" and first["text"]["annotations"] == []
    assert all("annotations" not in d["delta"]["content"][0]["text"] for d in deltas[1:])
    assert "".join(d["delta"]["content"][0]["text"]["value"] for d in deltas) == "Hello there, friend"
    created = dict(events)["thread.run.created"]
    assert created["status"] == "queued" and created["expires_at"] == created["created_at"] + 600
    completed = dict(events)["thread.run.completed"]
    assert completed["expires_at"] is None and completed["usage"]["total_tokens"] > 0
    message = dict(events)["thread.message.completed"]
    assert message["content"][0]["text"]["value"] == "Hello there, friend"
    assert events[-1] == ("done", "[DONE]")


def test_function_call_then_continuation(client, assistant, fake_llm, server):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "weather"}])
    fake_llm.script(
        Reply(
            tool_calls=[ToolCallSpec("get_weather", '{"city":"Paris"}', chunks=3), ToolCallSpec("get_weather", "{}")]
        ),
        Reply(text="Done.", chunks=1),
    )
    events = post_stream(server.base_url, f"/threads/{thread.id}/runs", {"assistant_id": assistant.id})
    assert collapse(names(events)) == [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.run.step.delta",
        "thread.run.requires_action",
        "done",
    ]
    step = dict(events)["thread.run.step.created"]
    assert step["type"] == "tool_calls" and step["step_details"]["tool_calls"] == []
    deltas = [d["delta"]["step_details"]["tool_calls"][0] for n, d in events if n == "thread.run.step.delta"]
    firsts = [d for d in deltas if "id" in d]
    assert [d["index"] for d in firsts] == [0, 1]
    assert firsts[0]["function"] == {"name": "get_weather", "arguments": "", "output": None}
    rest = [d for d in deltas if "id" not in d]
    assert all(set(d["function"]) == {"arguments"} for d in rest)
    assert "".join(d["function"]["arguments"] for d in rest if d["index"] == 0) == '{"city":"Paris"}'
    run = dict(events)["thread.run.requires_action"]
    calls = run["required_action"]["submit_tool_outputs"]["tool_calls"]
    outputs = [{"tool_call_id": c["id"], "output": "ok"} for c in calls]
    more = post_stream(
        server.base_url, f"/threads/{thread.id}/runs/{run['id']}/submit_tool_outputs", {"tool_outputs": outputs}
    )
    assert collapse(names(more)) == AFTER_TOOL_OUTPUTS
    first = next(d for n, d in more if n == "thread.run.step.completed")
    assert first["id"] == step["id"] and [c["function"]["output"] for c in first["step_details"]["tool_calls"]] == [
        "ok",
        "ok",
    ]
    assert dict(more)["thread.run.queued"]["required_action"] is None


def test_create_thread_and_run_stream_starts_with_thread_created(client, assistant, fake_llm, server):
    events = post_stream(
        server.base_url,
        "/threads/runs",
        {"assistant_id": assistant.id, "thread": {"messages": [{"role": "user", "content": "x"}]}},
    )
    assert names(events)[:3] == ["thread.created", "thread.run.created", "thread.run.queued"]
    assert names(events)[-2:] == ["thread.run.completed", "done"]


def test_text_then_tool_call_in_one_turn(client, assistant, fake_llm, server):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "weather"}])
    fake_llm.script(Reply(text="Let me check.", tool_calls=[ToolCallSpec("get_weather", '{"city":"Oslo"}')]))
    events = post_stream(server.base_url, f"/threads/{thread.id}/runs", {"assistant_id": assistant.id})
    seq = collapse(names(events))
    assert seq.index("thread.message.completed") < seq.index("thread.run.step.delta")
    assert seq[-2:] == ["thread.run.requires_action", "done"]
    steps = [d for n, d in events if n == "thread.run.step.created"]
    assert [s["type"] for s in steps] == ["message_creation", "tool_calls"]
