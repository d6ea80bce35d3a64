"""Messages through the official SDK (contract §1.3, §2.3)."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from .helpers import check_pagination, expect_error


@pytest.fixture
def thread_id(client: openai.OpenAI) -> str:
    return client.beta.threads.create().id


def test_create_string(client: openai.OpenAI, thread_id: str) -> None:
    m = client.beta.threads.messages.create(thread_id, role="user", content="What is 2+2?", metadata={"k": "v"})
    assert m.id.startswith("msg_") and m.object == "thread.message"
    assert m.thread_id == thread_id and m.role == "user"
    assert len(m.content) == 1 and m.content[0].type == "text"
    assert m.content[0].text.value == "What is 2+2?" and m.content[0].text.annotations == []
    assert m.metadata == {"k": "v"}
    assert m.run_id is None and m.assistant_id is None
    assert m.status in (None, "completed")
    assert m.attachments in (None, [])
    assert m.incomplete_details is None
    assert client.beta.threads.messages.retrieve(m.id, thread_id=thread_id).model_dump() == m.model_dump()


def test_create_parts_and_attachments(client: openai.OpenAI, thread_id: str) -> None:
    img = client.files.create(file=("p.png", b"\x89PNG\r\n\x1a\nnot really"), purpose="vision").id
    doc = client.files.create(file=("doc.md", b"# doc\n"), purpose="assistants").id
    m = client.beta.threads.messages.create(
        thread_id,
        role="user",
        content=[
            {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg", "detail": "high"}},
            {"type": "text", "text": "first"},
            {"type": "image_file", "image_file": {"file_id": img}},
            {"type": "text", "text": "second"},
        ],
        attachments=[{"file_id": doc, "tools": [{"type": "code_interpreter"}, {"type": "file_search"}]}],
    )
    assert [p.type for p in m.content] == ["image_url", "text", "image_file", "text"]
    assert m.content[0].image_url.detail == "high"
    assert [m.content[1].text.value, m.content[3].text.value] == ["first", "second"]
    assert m.content[2].image_file.file_id == img
    assert m.attachments[0].file_id == doc
    assert sorted(t.type for t in m.attachments[0].tools) == ["code_interpreter", "file_search"]
    assert client.beta.threads.messages.retrieve(m.id, thread_id=thread_id).model_dump() == m.model_dump()


def test_assistant_role(client: openai.OpenAI, thread_id: str) -> None:
    m = client.beta.threads.messages.create(thread_id, role="assistant", content="Earlier answer.")
    assert m.role == "assistant"


def test_modify_metadata(client: openai.OpenAI, thread_id: str) -> None:
    m = client.beta.threads.messages.create(thread_id, role="user", content="x", metadata={"a": "1"})
    u = client.beta.threads.messages.update(m.id, thread_id=thread_id, metadata={"a": "2", "b": "3"})
    assert u.metadata == {"a": "2", "b": "3"}
    assert u.content[0].text.value == "x" and u.created_at == m.created_at
    assert client.beta.threads.messages.retrieve(m.id, thread_id=thread_id).metadata == {"a": "2", "b": "3"}
    expect_error(
        openai.BadRequestError,
        lambda: client.beta.threads.messages.update(m.id, thread_id=thread_id, extra_body={"content": "y"}),
        contains="content",
    )


def test_delete(client: openai.OpenAI, thread_id: str) -> None:
    keep = client.beta.threads.messages.create(thread_id, role="user", content="keep")
    gone = client.beta.threads.messages.create(thread_id, role="user", content="gone")
    d = client.beta.threads.messages.delete(gone.id, thread_id=thread_id)
    assert (d.id, d.object, d.deleted) == (gone.id, "thread.message.deleted", True)
    assert [m.id for m in client.beta.threads.messages.list(thread_id)] == [keep.id]
    expect_error(
        openai.NotFoundError,
        lambda: client.beta.threads.messages.retrieve(gone.id, thread_id=thread_id),
        f"No message found with id '{gone.id}'.",
    )
    expect_error(openai.NotFoundError, lambda: client.beta.threads.messages.delete(gone.id, thread_id=thread_id))


def test_message_of_another_thread_is_not_found(client: openai.OpenAI, thread_id: str) -> None:
    other = client.beta.threads.create(messages=[{"role": "user", "content": "elsewhere"}])
    foreign = client.beta.threads.messages.list(other.id).data[0]
    expect_error(openai.NotFoundError, lambda: client.beta.threads.messages.retrieve(foreign.id, thread_id=thread_id))
    expect_error(
        openai.NotFoundError,
        lambda: client.beta.threads.messages.update(foreign.id, thread_id=thread_id, metadata={"x": "y"}),
    )
    expect_error(openai.NotFoundError, lambda: client.beta.threads.messages.delete(foreign.id, thread_id=thread_id))
    assert client.beta.threads.messages.retrieve(foreign.id, thread_id=other.id).metadata == {}


def test_pagination(client: openai.OpenAI, http: Any, thread_id: str) -> None:
    ids = [client.beta.threads.messages.create(thread_id, role="user", content=f"m{i}").id for i in range(25)]
    check_pagination(
        lambda **kw: client.beta.threads.messages.list(thread_id, **kw),
        http,
        f"/threads/{thread_id}/messages",
        ids,
        exact=True,
    )
    default = client.beta.threads.messages.list(thread_id)
    assert [m.id for m in default.data] == ids[::-1][:20]  # default: desc, limit 20


def test_run_id_filter(client: openai.OpenAI, http: Any, thread_id: str) -> None:
    client.beta.threads.messages.create(thread_id, role="user", content="a")
    assert client.beta.threads.messages.list(thread_id, run_id="run_doesnotexist").data == []
    body = http.get(f"/threads/{thread_id}/messages", params={"run_id": "run_doesnotexist"}).json()
    assert body["data"] == [] and body["has_more"] is False
    assert len(client.beta.threads.messages.list(thread_id).data) == 1


def test_errors(client: openai.OpenAI, thread_id: str) -> None:
    expect_error(
        openai.NotFoundError,
        lambda: client.beta.threads.messages.create("thread_x", role="user", content="x"),
        "No thread found with id 'thread_x'.",
    )
    expect_error(
        openai.BadRequestError,
        lambda: client.beta.threads.messages.retrieve("undefined", thread_id=thread_id),
        "Invalid 'message_id': 'undefined'. Expected an ID that begins with 'msg'.",
    )
    expect_error(
        openai.NotFoundError,
        lambda: client.beta.threads.messages.retrieve("msg_x", thread_id=thread_id),
        "No message found with id 'msg_x'.",
    )
    expect_error(
        openai.BadRequestError, lambda: client.beta.threads.messages.create(thread_id, role="user", content="")
    )
    expect_error(
        openai.BadRequestError, lambda: client.beta.threads.messages.create(thread_id, role="user", content=[])
    )
    expect_error(
        openai.BadRequestError,
        lambda: client.beta.threads.messages.create(thread_id, role="tool", content="x"),  # type: ignore[arg-type]
    )
    expect_error(
        openai.BadRequestError,
        lambda: client.beta.threads.messages.create(
            thread_id,
            role="user",
            content=[{"type": "text", "text": {"value": "x"}}],  # output shape, not input
        ),
    )
    expect_error(
        openai.NotFoundError,
        lambda: client.beta.threads.messages.create(
            thread_id, role="user", content=[{"type": "image_file", "image_file": {"file_id": "file-missing"}}]
        ),
        "No file found with id 'file-missing'.",
    )
    expect_error(openai.BadRequestError, lambda: client.beta.threads.messages.list(thread_id, limit=101))
    expect_error(openai.BadRequestError, lambda: client.beta.threads.messages.list(thread_id, order="up"))  # type: ignore[arg-type]
