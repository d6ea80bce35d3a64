"""Threads through the official SDK (contract §1.2, §2.2)."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from .helpers import expect_error

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


@pytest.fixture
def files(client: openai.OpenAI) -> dict[str, str]:
    return {
        "image": client.files.create(file=("dot.png", PNG), purpose="vision").id,
        "csv": client.files.create(file=("data.csv", b"a,b\n1,2\n"), purpose="assistants").id,
    }


def test_create_empty(client: openai.OpenAI, http: Any) -> None:
    t = client.beta.threads.create()
    assert t.id.startswith("thread_") and t.object == "thread"
    assert t.metadata == {}
    assert isinstance(t.created_at, int)
    assert client.beta.threads.messages.list(t.id).data == []
    # The SDK sends `{}`; a bodiless POST must work too.
    raw = http.post("/threads")
    assert raw.status_code == 200, raw.text
    assert raw.json()["object"] == "thread"


def test_create_with_messages(client: openai.OpenAI, files: dict[str, str]) -> None:
    t = client.beta.threads.create(
        metadata={"user": "u1"},
        messages=[
            {"role": "user", "content": "Hello"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look at these"},
                    {"type": "image_file", "image_file": {"file_id": files["image"], "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                ],
                "attachments": [{"file_id": files["csv"], "tools": [{"type": "code_interpreter"}]}],
                "metadata": {"n": "2"},
            },
            {"role": "assistant", "content": "Hi, how can I help?"},
        ],
    )
    assert t.metadata == {"user": "u1"}
    msgs = client.beta.threads.messages.list(t.id, order="asc").data
    assert [m.role for m in msgs] == ["user", "user", "assistant"]
    assert msgs[0].content[0].type == "text"
    assert msgs[0].content[0].text.value == "Hello" and msgs[0].content[0].text.annotations == []
    parts = msgs[1].content
    assert [p.type for p in parts] == ["text", "image_file", "image_url"]
    assert parts[0].text.value == "Look at these"
    assert parts[1].image_file.file_id == files["image"] and parts[1].image_file.detail == "low"
    assert parts[2].image_url.url == "https://example.com/cat.png"
    assert parts[2].image_url.detail in (None, "auto")
    assert msgs[1].attachments[0].file_id == files["csv"]
    assert [tool.type for tool in msgs[1].attachments[0].tools] == ["code_interpreter"]
    assert msgs[1].metadata == {"n": "2"}
    for m in msgs:
        assert m.thread_id == t.id and m.run_id is None and m.assistant_id is None
    # A code_interpreter attachment makes the file available to the thread's code interpreter.
    thread = client.beta.threads.retrieve(t.id)
    assert files["csv"] in thread.tool_resources.code_interpreter.file_ids


def test_create_with_tool_resources(client: openai.OpenAI, files: dict[str, str]) -> None:
    t = client.beta.threads.create(tool_resources={"code_interpreter": {"file_ids": [files["csv"]]}})
    assert t.tool_resources.code_interpreter.file_ids == [files["csv"]]
    assert client.beta.threads.retrieve(t.id).model_dump() == t.model_dump()


def test_retrieve_and_modify(client: openai.OpenAI, files: dict[str, str]) -> None:
    t = client.beta.threads.create(metadata={"a": "1"})
    got = client.beta.threads.retrieve(t.id)
    assert got.model_dump() == t.model_dump()
    m = client.beta.threads.update(t.id, metadata={"b": "2"})
    assert m.metadata == {"b": "2"} and m.created_at == t.created_at
    m = client.beta.threads.update(t.id, tool_resources={"code_interpreter": {"file_ids": [files["csv"]]}})
    assert m.metadata == {"b": "2"}
    assert m.tool_resources.code_interpreter.file_ids == [files["csv"]]
    assert client.beta.threads.retrieve(t.id).model_dump() == m.model_dump()
    # An empty update changes nothing.
    assert client.beta.threads.update(t.id).model_dump() == m.model_dump()


def test_delete_removes_messages(client: openai.OpenAI) -> None:
    t = client.beta.threads.create(messages=[{"role": "user", "content": "one"}])
    msg = client.beta.threads.messages.create(t.id, role="user", content="two")
    d = client.beta.threads.delete(t.id)
    assert (d.id, d.object, d.deleted) == (t.id, "thread.deleted", True)
    expect_error(openai.NotFoundError, lambda: client.beta.threads.retrieve(t.id), f"No thread found with id '{t.id}'.")
    expect_error(openai.NotFoundError, lambda: client.beta.threads.messages.list(t.id))
    expect_error(openai.NotFoundError, lambda: client.beta.threads.messages.retrieve(msg.id, thread_id=t.id))
    expect_error(openai.NotFoundError, lambda: client.beta.threads.delete(t.id))
    expect_error(openai.NotFoundError, lambda: client.beta.threads.update(t.id, metadata={}))


def test_not_found_and_bad_ids(client: openai.OpenAI) -> None:
    expect_error(
        openai.NotFoundError, lambda: client.beta.threads.retrieve("thread_x"), "No thread found with id 'thread_x'."
    )
    expect_error(
        openai.BadRequestError,
        lambda: client.beta.threads.retrieve("undefined"),
        "Invalid 'thread_id': 'undefined'. Expected an ID that begins with 'thread'.",
        param="thread_id",
    )
    expect_error(
        openai.BadRequestError,
        lambda: client.beta.threads.messages.list("undefined"),
        "Invalid 'thread_id': 'undefined'. Expected an ID that begins with 'thread'.",
    )


def test_invalid_bodies(client: openai.OpenAI) -> None:
    expect_error(openai.BadRequestError, lambda: client.beta.threads.create(extra_body={"title": "x"}))
    expect_error(
        openai.BadRequestError,
        lambda: client.beta.threads.create(messages=[{"role": "system", "content": "x"}]),  # type: ignore[list-item]
    )
    expect_error(
        openai.NotFoundError,
        lambda: client.beta.threads.create(
            messages=[{"role": "user", "content": "x", "attachments": [{"file_id": "file-nope", "tools": []}]}]
        ),
        "No file found with id 'file-nope'.",
    )
    t = client.beta.threads.create()
    # Modify accepts only metadata and tool_resources.
    expect_error(
        openai.BadRequestError,
        lambda: client.beta.threads.update(t.id, extra_body={"messages": []}),
        contains="messages",
    )
