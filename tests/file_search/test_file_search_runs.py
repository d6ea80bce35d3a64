"""The file_search tool inside runs: step results, include[] content, citations, attachments, helpers, streaming."""

from __future__ import annotations

from fakes import Reply, ToolCallSpec
from runs.sse import collapse, names, post_stream
from support.streams import stream_run, text_view

from .conftest import DOCS

INCLUDE = "step_details.tool_calls[*].file_search.results[*].content"


def assistant_with_store(client, stores):  # noqa: ANN001, ANN201
    store = stores.create(name="kb")
    ids = {}
    for name, data in DOCS.items():
        ids[name] = stores.files.upload_and_poll(vector_store_id=store.id, file=(name, data)).id
    assistant = client.beta.assistants.create(
        model="gpt-4o",
        instructions="Answer from the files.",
        tools=[{"type": "file_search", "file_search": {"max_num_results": 3}}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    return assistant, store, ids


def search_then_answer(answer: str, query: str = "zebra stripes purpose") -> list[Reply]:
    return [
        Reply(tool_calls=[ToolCallSpec("file_search", f'{{"queries": ["{query}"]}}')]),
        Reply(text=answer, chunks=5),
    ]


def test_run_records_results_and_citations(client, stores, fake_llm):
    assistant, store, ids = assistant_with_store(client, stores)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Why do zebras have stripes?"}])
    fake_llm.script(*search_then_answer("They keep zebras cool 【0†zebras.txt】 and repel flies [0]."))
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "completed"
    sent_tools = fake_llm.requests[0]["tools"]
    assert [t["function"]["name"] for t in sent_tools] == ["file_search"]
    tool_message = fake_llm.requests[1]["messages"][-1]
    assert tool_message["role"] == "tool" and "【0†zebras.txt】" in tool_message["content"]
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id, order="asc").data
    call = steps[0].step_details.tool_calls[0]
    assert call.type == "file_search" and call.id.startswith("call_")
    results = call.file_search.results
    assert 1 <= len(results) <= 3 and results[0].file_name == "zebras.txt" and results[0].file_id == ids["zebras.txt"]
    assert all(0 <= r.score <= 1 for r in results) and results[0].content is None
    assert call.file_search.ranking_options.score_threshold == 0
    with_content = client.beta.threads.runs.steps.retrieve(
        step_id=steps[0].id, run_id=run.id, thread_id=thread.id, include=[INCLUDE]
    )
    assert "thermoregulation" in with_content.step_details.tool_calls[0].file_search.results[0].content[0].text
    text = client.beta.threads.messages.list(thread_id=thread.id).data[0].content[0].text
    assert text.value == "They keep zebras cool 【0†zebras.txt】 and repel flies 【0†zebras.txt】."
    assert len(text.annotations) == 2
    for annotation in text.annotations:
        assert annotation.type == "file_citation"
        assert text.value[annotation.start_index : annotation.end_index] == annotation.text
        assert annotation.file_citation.file_id == ids["zebras.txt"]
        client.files.retrieve(annotation.file_citation.file_id)


def test_answer_without_markers_still_cites_its_source(client, stores, fake_llm):
    assistant, _, ids = assistant_with_store(client, stores)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What colour is Mars and why?"}])
    fake_llm.script(*search_then_answer("Mars looks red because of iron oxide dust on its surface.", "mars colour"))
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "completed"
    text = client.beta.threads.messages.list(thread_id=thread.id).data[0].content[0].text
    assert text.value.startswith("Mars looks red because of iron oxide dust on its surface.")
    assert text.annotations and text.annotations[0].file_citation.file_id == ids["mars.md"]
    a = text.annotations[0]
    assert text.value[a.start_index : a.end_index] == a.text


def test_streamed_file_search_sequence(client, stores, fake_llm, server):
    assistant, _, _ = assistant_with_store(client, stores)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "zebras?"}])
    fake_llm.script(*search_then_answer("Stripes cool them [0]."))
    events = post_stream(
        server.base_url, f"/threads/{thread.id}/runs", {"assistant_id": assistant.id}, params={"include[]": INCLUDE}
    )
    seq = collapse(names(events))
    assert seq[:8] == [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.run.step.delta",
        "thread.run.step.completed",
        "thread.run.step.created",
    ]
    delta = next(d for n, d in events if n == "thread.run.step.delta")["delta"]["step_details"]["tool_calls"][0]
    assert delta["type"] == "file_search" and delta["file_search"] == {} and delta["index"] == 0
    done = next(d for n, d in events if n == "thread.run.step.completed")
    assert done["step_details"]["tool_calls"][0]["file_search"]["results"][0]["content"][0]["text"]
    annotation_deltas = [
        d
        for n, d in events
        if n == "thread.message.delta"
        and "annotations" in d["delta"]["content"][0]["text"]
        and d["delta"]["content"][0]["text"]["annotations"]
    ]
    assert len(annotation_deltas) == 1
    message = dict(events)["thread.message.completed"]
    streamed = "".join(
        d["delta"]["content"][0]["text"].get("value", "") for n, d in events if n == "thread.message.delta"
    )
    assert streamed == message["content"][0]["text"]["value"] == "Stripes cool them 【0†zebras.txt】."
    assert seq[-2:] == ["thread.run.completed", "done"]


def test_attachments_go_to_the_thread_store(client, stores, fake_llm):
    f = client.files.create(file=("bread.txt", DOCS["bread.txt"]), purpose="assistants")
    assistant = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "file_search"}])
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": "How does sourdough rise?",
                "attachments": [{"file_id": f.id, "tools": [{"type": "file_search"}]}],
            }
        ]
    )
    vs_ids = thread.tool_resources.file_search.vector_store_ids
    assert len(vs_ids) == 1
    store = stores.retrieve(vs_ids[0])
    assert store.expires_after.days == 7 and store.expires_after.anchor == "last_active_at"
    fake_llm.script(*search_then_answer("Wild yeast ferments the dough.", "sourdough rise"))
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "completed"
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id, order="asc").data
    assert steps[0].step_details.tool_calls[0].file_search.results[0].file_id == f.id
    more = client.files.create(file=("mars.md", DOCS["mars.md"]), purpose="assistants")
    client.beta.threads.messages.create(
        thread_id=thread.id,
        role="user",
        content="and mars?",
        attachments=[{"file_id": more.id, "tools": [{"type": "file_search"}, {"type": "code_interpreter"}]}],
    )
    thread = client.beta.threads.retrieve(thread.id)
    assert thread.tool_resources.file_search.vector_store_ids == vs_ids
    assert thread.tool_resources.code_interpreter.file_ids == [more.id]
    assert stores.retrieve(vs_ids[0]).file_counts.total == 2


def test_vector_stores_helper_on_assistant_and_thread(client, stores, fake_llm):
    f = client.files.create(file=("volcano.html", DOCS["volcano.html"]), purpose="assistants")
    assistant = client.beta.assistants.create(
        model="gpt-4o",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_stores": [{"file_ids": [f.id], "metadata": {"src": "helper"}}]}},
    )
    vs_id = assistant.tool_resources.file_search.vector_store_ids[0]
    store = stores.retrieve(vs_id)
    assert store.metadata == {"src": "helper"} and store.file_counts.total == 1
    thread = client.beta.threads.create(tool_resources={"file_search": {"vector_stores": [{"file_ids": [f.id]}]}})
    assert len(thread.tool_resources.file_search.vector_store_ids) == 1


def test_stream_citations_ride_on_their_marker_deltas(client, stores, fake_llm):
    assistant, _, ids = assistant_with_store(client, stores)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Why do zebras have stripes?"}])
    answer = "They keep zebras cool 【0†zebras.txt】 and repel flies [0]. That is all."
    fake_llm.script(
        Reply(tool_calls=[ToolCallSpec("file_search", '{"queries": ["zebra stripes purpose"]}')]),
        Reply(text=answer, chunks=len(answer)),  # one character per chunk: every marker is split
    )
    stored, handler = stream_run(client, thread.id, assistant.id)
    view = text_view(stored)
    assert view[0][0] == "They keep zebras cool 【0†zebras.txt】 and repel flies 【0†zebras.txt】. That is all."
    assert [a[0] for a in view[0][1]] == ["file_citation", "file_citation"] and view[0][1][0][4] == ids["zebras.txt"]
    assert handler.annotated_deltas == 2 and handler.misplaced == []


def test_fallback_citations_are_streamed_with_their_markers(client, stores, fake_llm):
    assistant, _, ids = assistant_with_store(client, stores)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What colour is Mars and why?"}])
    fake_llm.script(*search_then_answer("Mars looks red because of iron oxide dust on its surface.", "mars colour"))
    message, handler = stream_run(client, thread.id, assistant.id)
    view = text_view(message)
    assert view[0][1] and view[0][1][0][4] == ids["mars.md"]
    assert handler.annotated_deltas == 1 and handler.misplaced == []
