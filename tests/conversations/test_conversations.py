"""The Conversations API through the official SDK, on the threads store (a conversation is a thread; contract
§1.2, §2.7, §4, §5.4, §7). Every JSON response is validated against the OpenAI spec by the `client` fixture."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest

from fakes import Reply, ToolCallSpec
from support.schemas import validate
from threadline.services import conversations
from threadline.store import Store, now, schema
from threadline.store import responses as response_rows

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def suffix(object_id: str) -> str:
    return object_id.split("_", 1)[1]


def dump(items: Any) -> list[dict[str, Any]]:
    return [i.model_dump(exclude_unset=True) for i in items]


def test_create_retrieve_update_delete(client: openai.OpenAI) -> None:
    conv = client.conversations.create(metadata={"topic": "demo"})
    assert conv.id.startswith("conv_") and conv.object == "conversation"
    assert conv.metadata == {"topic": "demo"} and isinstance(conv.created_at, int)
    assert client.conversations.retrieve(conv.id).model_dump() == conv.model_dump()
    updated = client.conversations.update(conv.id, metadata={"topic": "other"})
    assert updated.metadata == {"topic": "other"}
    assert client.conversations.retrieve(conv.id).metadata == {"topic": "other"}
    deleted = client.conversations.delete(conv.id)
    assert deleted.id == conv.id and deleted.deleted and deleted.object == "conversation.deleted"
    with pytest.raises(openai.NotFoundError) as err:
        client.conversations.retrieve(conv.id)
    assert err.value.body["message"] == f"Conversation with id '{conv.id}' not found."


def test_created_with_items_in_order(client: openai.OpenAI) -> None:
    conv = client.conversations.create(
        items=[
            {"role": "developer", "content": "Answer in French."},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello"}]},
            {"role": "assistant", "content": "Bonjour"},
            {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": '{"q":"x"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "found"},
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "thinking"}], "encrypted_content": "e"},
        ]
    )
    asc = client.conversations.items.list(conv.id, order="asc").data
    assert [i.type for i in asc] == [
        "message",
        "message",
        "message",
        "function_call",
        "function_call_output",
        "reasoning",
    ]
    assert [getattr(i, "role", None) for i in asc[:3]] == ["developer", "user", "assistant"]
    assert asc[0].content[0].type == "input_text" and asc[0].content[0].text == "Answer in French."
    assert asc[2].content[0].type == "output_text" and asc[2].content[0].text == "Bonjour"
    assert asc[2].content[0].annotations == [] and asc[2].content[0].logprobs == []
    assert all(i.status == "completed" for i in asc)
    assert asc[3].id.startswith("fc_") and asc[3].call_id == "call_1" and asc[3].arguments == '{"q":"x"}'
    assert asc[4].output == "found" and asc[4].call_id == "call_1"
    # encrypted reasoning is only shown when asked for
    assert asc[5].encrypted_content is None
    full = client.conversations.items.retrieve(
        asc[5].id, conversation_id=conv.id, include=["reasoning.encrypted_content"]
    )
    assert full.encrypted_content == "e"
    # default order is newest first
    desc = client.conversations.items.list(conv.id).data
    assert [i.id for i in desc] == [i.id for i in reversed(asc)]


def test_pagination_follows_last_id(client: openai.OpenAI) -> None:
    conv = client.conversations.create(items=[{"role": "user", "content": f"m{i}"} for i in range(7)])
    page = client.conversations.items.list(conv.id, order="asc", limit=3)
    assert len(page.data) == 3 and page.has_more
    texts = [i.content[0].text for i in page]
    assert texts == [f"m{i}" for i in range(7)]
    desc = [i.content[0].text for i in client.conversations.items.list(conv.id, limit=2)]
    assert desc == [f"m{i}" for i in reversed(range(7))]
    assert client.conversations.items.list(conv.id, after="msg_unknown").data == []
    empty = client.conversations.items.list(client.conversations.create().id)
    assert empty.data == [] and not empty.has_more


def test_items_create_retrieve_delete(client: openai.OpenAI) -> None:
    conv = client.conversations.create()
    image = client.files.create(file=("dot.png", PNG), purpose="vision").id
    created = client.conversations.items.create(
        conv.id,
        items=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "file_id": image},
                    {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "low"},
                ],
            },
            {"type": "function_call_output", "call_id": "call_9", "output": [{"type": "input_text", "text": "ok"}]},
        ],
    )
    assert created.object == "list" and len(created.data) == 2
    message, output = created.data
    assert message.id.startswith("msg_") and message.status == "completed"
    assert [p.type for p in message.content] == ["input_text", "input_image", "input_image"]
    assert message.content[1].file_id == image and message.content[1].detail == "auto"
    assert message.content[2].image_url == "https://example.com/a.png" and message.content[2].detail == "low"
    assert client.conversations.items.retrieve(output.id, conversation_id=conv.id).output[0].text == "ok"
    after = client.conversations.items.delete(output.id, conversation_id=conv.id)
    assert after.object == "conversation" and after.id == conv.id
    assert [i.id for i in client.conversations.items.list(conv.id).data] == [message.id]
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve(output.id, conversation_id=conv.id)
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.delete(output.id, conversation_id=conv.id)
    # an item of another conversation is not found through this one
    other = client.conversations.create()
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve(message.id, conversation_id=other.id)


def test_item_with_unknown_file_is_refused(client: openai.OpenAI) -> None:
    conv = client.conversations.create()
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.create(
            conv.id, items=[{"role": "user", "content": [{"type": "input_image", "file_id": "file-nope"}]}]
        )
    assert client.conversations.items.list(conv.id).data == []


def test_thread_is_a_conversation(client: openai.OpenAI) -> None:
    image = client.files.create(file=("dot.png", PNG), purpose="vision").id
    thread = client.beta.threads.create(
        messages=[
            {"role": "user", "content": "first"},
            {"role": "user", "content": [{"type": "image_file", "image_file": {"file_id": image}}]},
            {"role": "assistant", "content": "second"},
        ],
        metadata={"k": "v"},
    )
    conv_id = "conv_" + suffix(thread.id)
    conv = client.conversations.retrieve(conv_id)
    assert conv.id == conv_id and conv.metadata == {"k": "v"} and conv.created_at == thread.created_at
    messages = client.beta.threads.messages.list(thread.id, order="asc").data
    items = client.conversations.items.list(thread.id, order="asc").data  # thread_ ids are accepted too
    assert [i.id for i in items] == [m.id for m in messages]
    assert items[0].role == "user" and items[0].content[0].model_dump(exclude_none=True) == {
        "type": "input_text",
        "text": "first",
    }
    assert items[1].content[0].type == "input_image" and items[1].content[0].file_id == image
    assert items[2].role == "assistant" and items[2].content[0].type == "output_text"
    assert items[2].content[0].text == "second"


def test_conversation_is_a_thread(client: openai.OpenAI) -> None:
    conv = client.conversations.create(
        metadata={"a": "b"},
        items=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"type": "function_call", "call_id": "call_2", "name": "f", "arguments": "{}"},
            {"role": "assistant", "content": [{"type": "output_text", "text": "Hello", "annotations": []}]},
        ],
    )
    thread_id = "thread_" + suffix(conv.id)
    thread = client.beta.threads.retrieve(conv.id)  # conv_ ids are accepted by the Assistants API
    assert thread.id == thread_id and thread.metadata == {"a": "b"}
    messages = client.beta.threads.messages.list(conv.id, order="asc").data
    # the function call is not a message; the system message is shown as a user message
    assert [(m.role, m.content[0].text.value) for m in messages] == [
        ("user", "Be brief."),
        ("user", "Hi"),
        ("assistant", "Hello"),
    ]
    assert all(m.thread_id == thread_id and m.run_id is None and m.assistant_id is None for m in messages)
    got = client.beta.threads.messages.retrieve(messages[0].id, thread_id=conv.id)
    assert got.id == messages[0].id
    # the item keeps its role in the conversation view
    assert client.conversations.items.retrieve(messages[0].id, conversation_id=conv.id).role == "system"
    # a non-message item is not an Assistants message (nor has a message id)
    fc = next(i for i in client.conversations.items.list(conv.id).data if i.type == "function_call")
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.messages.retrieve(fc.id, thread_id=thread_id)
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.messages.delete(fc.id, thread_id=thread_id)
    assert client.conversations.items.retrieve(fc.id, conversation_id=thread_id).call_id == "call_2"
    # a message added through the Assistants API is an item, in the same order
    added = client.beta.threads.messages.create(conv.id, role="user", content="More")
    assert client.conversations.items.list(conv.id).data[0].id == added.id
    # deleting a message through either API removes the one row
    client.conversations.items.delete(added.id, conversation_id=conv.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.retrieve(added.id, thread_id=thread_id)


def test_run_on_a_conversation_sees_its_messages(client: openai.OpenAI, fake_llm: Any) -> None:
    assistant = client.beta.assistants.create(model="gpt-4o", instructions="Be terse.")
    conv = client.conversations.create(
        items=[
            {"role": "developer", "content": "Say hi."},
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "the user greets"}]},
            {"role": "user", "content": "Hi"},
        ]
    )
    fake_llm.script(Reply(text="Hello there."))
    run = client.beta.threads.runs.create_and_poll(thread_id=conv.id, assistant_id=assistant.id)
    assert run.status == "completed" and run.thread_id == "thread_" + suffix(conv.id)
    # the run saw the developer message as a user turn, and no item that is not a message
    sent = [m["content"] for m in fake_llm.requests[-1]["messages"]]
    assert "Say hi." in sent and "Hi" in sent
    assert not any("the user greets" in str(c) for c in sent)
    newest = client.conversations.items.list(conv.id, limit=1).data[0]
    assert newest.role == "assistant" and newest.content[0].type == "output_text"
    assert newest.content[0].text == "Hello there."


def test_items_wait_for_an_active_run(client: openai.OpenAI, fake_llm: Any) -> None:
    assistant = client.beta.assistants.create(
        model="gpt-4o",
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}],
    )
    conv = client.conversations.create(items=[{"role": "user", "content": "call f"}])
    fake_llm.script(Reply(tool_calls=[ToolCallSpec("f", "{}")]))
    run = client.beta.threads.runs.create_and_poll(thread_id=conv.id, assistant_id=assistant.id)
    assert run.status == "requires_action"
    with pytest.raises(openai.BadRequestError) as err:
        client.conversations.items.create(conv.id, items=[{"role": "user", "content": "too soon"}])
    assert err.value.code == "conversation_locked"
    assert err.value.body["message"] == (
        "Another process is currently operating on this conversation. Please retry in a few seconds."
    )
    client.beta.threads.runs.cancel(run.id, thread_id=conv.id)
    client.conversations.items.create(conv.id, items=[{"role": "user", "content": "now"}])


def test_items_wait_for_an_active_response(client: openai.OpenAI, db: Store) -> None:
    conv = client.conversations.create()
    thread_id = "thread_" + suffix(conv.id)
    response = {"id": f"resp_lock{time.time_ns()}", "object": "response", "created_at": now(), "status": "in_progress"}
    with db.write() as conn:
        response_rows.insert(conn, response, [], thread_id=thread_id)
        # leased for an hour, as by a process executing it: the sweeper must not end it as orphaned meanwhile
        lease = schema.responses.update().where(schema.responses.c.id == response["id"])
        conn.execute(lease.values(lease_until=time.time() + 3600))
    with pytest.raises(openai.BadRequestError) as err:
        client.conversations.items.create(conv.id, items=[{"role": "user", "content": "x"}])
    assert err.value.code == "conversation_locked"
    # one lock for both APIs
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.threads.messages.create(conv.id, role="user", content="x")
    assert err.value.body["message"] == f"Can't add messages to {thread_id} while a run {response['id']} is active."
    assistant = client.beta.assistants.create(model="gpt-4o")
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.create(conv.id, assistant_id=assistant.id)
    with db.write() as conn:
        response_rows.delete(conn, response["id"])
    assert client.conversations.items.create(conv.id, items=[{"role": "user", "content": "x"}]).data


def test_deleting_either_way_removes_the_row(client: openai.OpenAI) -> None:
    conv = client.conversations.create(items=[{"role": "user", "content": "x"}])
    client.beta.threads.delete(conv.id)
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.list(conv.id)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "y"}])
    deleted = client.conversations.delete(thread.id)
    assert deleted.id == "conv_" + suffix(thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.list(thread.id)


def test_include_shows_tool_results(client: openai.OpenAI) -> None:
    conv = client.conversations.create(
        items=[
            {
                "type": "file_search_call",
                "id": "fs_given",
                "status": "completed",
                "queries": ["q"],
                "results": [{"file_id": "file-x", "filename": "a.txt", "text": "hit", "score": 0.5, "attributes": {}}],
            },
            {
                "type": "code_interpreter_call",
                "id": "ci_given",
                "status": "completed",
                "container_id": "cntr_1",
                "code": "print(1)",
                "outputs": [{"type": "logs", "logs": "1\n"}],
            },
        ]
    )
    plain = client.conversations.items.list(conv.id, order="asc").data
    assert plain[0].results is None and plain[0].queries == ["q"]
    assert plain[1].outputs is None and plain[1].code == "print(1)"
    full = client.conversations.items.list(
        conv.id, order="asc", include=["file_search_call.results", "code_interpreter_call.outputs"]
    ).data
    assert full[0].results[0].text == "hit" and full[1].outputs[0].logs == "1\n"


def test_items_listed_can_be_sent_back(client: openai.OpenAI) -> None:
    # The Agents SDK's session re-sends listed items (dumped with exclude_unset) as input.
    source = client.conversations.create(
        items=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"type": "function_call", "call_id": "call_3", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_3", "output": "done"},
        ]
    )
    listed = dump(client.conversations.items.list(source.id, order="asc").data)
    copy = client.conversations.create(items=listed)
    again = dump(client.conversations.items.list(copy.id, order="asc").data)
    strip = [{k: v for k, v in i.items() if k != "id"} for i in listed]
    assert [{k: v for k, v in i.items() if k != "id"} for i in again] == strip


def test_item_reference_copies_a_stored_item(client: openai.OpenAI) -> None:
    source = client.conversations.create(items=[{"role": "user", "content": "remember me"}])
    (item,) = client.conversations.items.list(source.id).data
    target = client.conversations.create(items=[{"type": "item_reference", "id": item.id}])
    (copied,) = client.conversations.items.list(target.id).data
    assert copied.id != item.id and copied.content[0].text == "remember me"
    with pytest.raises(openai.NotFoundError):
        client.conversations.create(items=[{"type": "item_reference", "id": "msg_nope"}])


def test_limits(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.conversations.create(items=[{"role": "user", "content": "x"}] * 21)
    assert err.value.code == "array_above_max_length" and err.value.param == "items"
    conv = client.conversations.create(items=[{"role": "user", "content": "x"}] * 20)
    assert len(client.conversations.items.list(conv.id, limit=100).data) == 20
    with pytest.raises(openai.BadRequestError):
        client.conversations.items.create(conv.id, items=[{"role": "user", "content": "x"}] * 21)
    with pytest.raises(openai.BadRequestError) as err:
        client.conversations.create(items=[{"type": "web_search_call", "id": "ws_1", "status": "completed"}])
    assert err.value.param == "items[0].type" and err.value.code == "invalid_value"


def test_parts_and_annotations_in_both_views(client: openai.OpenAI) -> None:
    doc = client.files.create(file=("notes.txt", b"notes"), purpose="assistants").id
    conv = client.conversations.create(
        items=[
            {
                "role": "user",
                "content": [{"type": "input_text", "text": "see"}, {"type": "input_file", "file_id": doc}],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "output_text",
                        "text": "Cited.",
                        "annotations": [
                            {"type": "file_citation", "file_id": doc, "filename": "notes.txt", "index": 5},
                            {
                                "type": "url_citation",
                                "url": "https://e.x",
                                "start_index": 0,
                                "end_index": 1,
                                "title": "t",
                            },
                        ],
                    },
                    {"type": "refusal", "refusal": "Not that."},
                ],
            },
        ]
    )
    user, assistant = client.beta.threads.messages.list(conv.id, order="asc").data
    assert [a.file_id for a in user.attachments] == [doc] and user.attachments[0].tools == []
    assert [p.type for p in user.content] == ["text"]
    text, refusal = assistant.content
    assert text.text.value == "Cited." and refusal.refusal == "Not that."
    (citation,) = text.text.annotations  # the url citation has no Assistants form
    assert citation.type == "file_citation" and citation.file_citation.file_id == doc
    assert citation.start_index == citation.end_index == 5
    # the conversation view keeps the items as sent
    items = client.conversations.items.list(conv.id, order="asc").data
    assert items[0].content[1].type == "input_file" and items[0].content[1].file_id == doc
    assert [a.type for a in items[1].content[0].annotations] == ["file_citation", "url_citation"]
    assert items[1].content[1].type == "refusal"


def test_assistants_annotations_as_item_annotations() -> None:
    message = {
        "id": "msg_a",
        "status": "completed",
        "role": "assistant",
        "content": [
            {
                "type": "text",
                "text": {
                    "value": "See【4†source】 and sandbox:/mnt/data/x.csv",
                    "annotations": [
                        {
                            "type": "file_citation",
                            "text": "【4†source】",
                            "file_citation": {"file_id": "file-1"},
                            "start_index": 3,
                            "end_index": 13,
                        },
                        {
                            "type": "file_path",
                            "text": "sandbox:/mnt/data/x.csv",
                            "file_path": {"file_id": "file-2"},
                            "start_index": 18,
                            "end_index": 41,
                        },
                    ],
                },
            },
            {"type": "image_url", "image_url": {"url": "https://e.x/a.png", "detail": "low"}},
        ],
    }
    item = conversations.message_item(message, {"file-1": "a.txt"})
    validate("Message", item)
    part = item["content"][0]
    assert part["type"] == "output_text" and part["logprobs"] == []
    assert part["annotations"] == [
        {"type": "file_citation", "file_id": "file-1", "filename": "a.txt", "index": 13},
        {"type": "file_path", "file_id": "file-2", "index": 18},
    ]
    assert item["content"][1] == {
        "type": "input_image",
        "image_url": "https://e.x/a.png",
        "file_id": None,
        "detail": "low",
    }
