"""Message attachments through every way of adding a message, for both tools: the file reaches the tool
(/mnt/data, the thread's vector store), and the user's words reach the model unchanged (the attachment notes go
to the system prompt)."""

from __future__ import annotations

import json

import pytest

from fakes import Reply, ToolCallSpec
from support.sdk import vector_stores

from .conftest import run_code

WAYS = ["messages.create", "threads.create", "create_and_run", "additional_messages"]
USER_TEXT = "Please look at my file.\n  (exact words, trailing spaces)  "
NOTES = b"Sourdough rises because wild yeast and lactobacilli ferment the dough and release carbon dioxide."


def _run(client, way: str, assistant_id: str, message: dict):  # noqa: ANN001, ANN202
    """Add `message` the given way and run the assistant to the end; returns (thread, run)."""
    runs = client.beta.threads.runs
    if way == "create_and_run":
        run = client.beta.threads.create_and_run_poll(
            assistant_id=assistant_id, thread={"messages": [message]}, poll_interval_ms=50
        )
        return client.beta.threads.retrieve(run.thread_id), run
    if way == "threads.create":
        thread = client.beta.threads.create(messages=[message])
        run = runs.create_and_poll(thread_id=thread.id, assistant_id=assistant_id, poll_interval_ms=50)
    elif way == "messages.create":
        thread = client.beta.threads.create()
        client.beta.threads.messages.create(thread_id=thread.id, **message)
        run = runs.create_and_poll(thread_id=thread.id, assistant_id=assistant_id, poll_interval_ms=50)
    else:
        thread = client.beta.threads.create()
        run = runs.create_and_poll(
            thread_id=thread.id, assistant_id=assistant_id, additional_messages=[message], poll_interval_ms=50
        )
    return client.beta.threads.retrieve(thread.id), run


def _sent_user_messages(request: dict) -> list:
    return [m["content"] for m in request["messages"] if m["role"] == "user"]


@pytest.mark.parametrize("way", WAYS)
def test_code_interpreter_attachment(client, fake_llm, way):
    f = client.files.create(file=("notes.txt", NOTES), purpose="assistants")
    assistant = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])
    message = {
        "role": "user",
        "content": USER_TEXT,
        "attachments": [{"file_id": f.id, "tools": [{"type": "code_interpreter"}]}],
    }
    fake_llm.script(*run_code("print(open('/mnt/data/notes.txt').read())", "It is about bread."))
    thread, run = _run(client, way, assistant.id, message)
    assert thread.tool_resources.code_interpreter.file_ids == [f.id]
    first = fake_llm.requests[0]
    assert _sent_user_messages(first) == [USER_TEXT]
    system = first["messages"][0]
    assert system["role"] == "system"
    assert f"notes.txt (file id {f.id})" in system["content"] and "/mnt/data/notes.txt" in system["content"]
    assert run.status == "completed", run.last_error
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id, order="asc").data
    logs = steps[0].step_details.tool_calls[0].code_interpreter.outputs[0].logs
    assert "wild yeast" in logs


@pytest.mark.parametrize("way", WAYS)
def test_file_search_attachment(client, fake_llm, way):
    f = client.files.create(file=("bread.txt", NOTES), purpose="assistants")
    assistant = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "file_search"}])
    message = {
        "role": "user",
        "content": USER_TEXT,
        "attachments": [{"file_id": f.id, "tools": [{"type": "file_search"}]}],
    }
    fake_llm.script(
        Reply(tool_calls=[ToolCallSpec("file_search", json.dumps({"queries": ["why does sourdough rise"]}))]),
        Reply(text="Wild yeast ferments it.", chunks=2),
    )
    thread, run = _run(client, way, assistant.id, message)
    assert run.status == "completed", run.last_error
    vs_ids = thread.tool_resources.file_search.vector_store_ids
    assert len(vs_ids) == 1
    files = vector_stores(client).files.list(vector_store_id=vs_ids[0]).data
    assert [x.id for x in files] == [f.id]
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id, order="asc").data
    results = steps[0].step_details.tool_calls[0].file_search.results
    assert results and results[0].file_id == f.id
    first = fake_llm.requests[0]
    assert _sent_user_messages(first) == [USER_TEXT]
    system = first["messages"][0]["content"]
    assert f"bread.txt (file id {f.id}), for file_search" in system and "/mnt/data" not in system


def test_user_words_verbatim_with_several_parts_and_no_attachments(client, fake_llm):
    assistant = client.beta.assistants.create(model="gpt-4o", instructions="Be brief.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "  plain [Attached file: x]  "}])
    fake_llm.script(Reply(text="ok"))
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "completed"
    assert _sent_user_messages(fake_llm.requests[0]) == ["  plain [Attached file: x]  "]
    assert fake_llm.requests[0]["messages"][0] == {"role": "system", "content": "Be brief."}


def test_create_and_run_keeps_top_level_resources_and_attachments(client, fake_llm):
    given = client.files.create(file=("given.txt", b"given"), purpose="assistants")
    attached = client.files.create(file=("attached.txt", b"attached"), purpose="assistants")
    assistant = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])
    fake_llm.script(Reply(text="ok"))
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={
            "messages": [
                {
                    "role": "user",
                    "content": "x",
                    "attachments": [{"file_id": attached.id, "tools": [{"type": "code_interpreter"}]}],
                }
            ]
        },
        tool_resources={"code_interpreter": {"file_ids": [given.id]}},
        poll_interval_ms=50,
    )
    assert run.status == "completed", run.last_error
    thread = client.beta.threads.retrieve(run.thread_id)
    assert thread.tool_resources.code_interpreter.file_ids == [given.id, attached.id]
    system = fake_llm.requests[0]["messages"][0]["content"]
    assert "/mnt/data/attached.txt" in system and "given.txt" not in system  # only attachments are listed
