"""Stored responses through the official SDK: retrieve (with include[]), delete, input items, input token counts
(contract §1.1, §2.2, §4.1, §5.2, §5.3). Response rows are written into the server's database the way the
execution of POST /v1/responses writes them (services/responses.py builds the object)."""

from __future__ import annotations

import secrets
from typing import Any

import openai
import pytest

from support.schemas import validate
from threadline.services import conversations, responses
from threadline.services import response_models as rm
from threadline.store import Store, now
from threadline.store import responses as response_rows
from threadline.tokens import count_tokens


def store_response(
    db: Store,
    request: dict[str, Any],
    *,
    output: list[dict[str, Any]] | None = None,
    status: str = "completed",
    thread_id: str | None = None,
) -> dict[str, Any]:
    body = rm.ResponseCreate.model_validate(request)
    response_id = "resp_" + secrets.token_hex(25)
    ts = now()
    response = responses.response_object(
        body,
        response_id=response_id,
        created_at=ts,
        model=body.model or "gpt-4o",
        status=status,
        output=output or [],
        usage=responses.usage_object(12, 3) if status == "completed" else None,
        completed_at=ts if status == "completed" else None,
    )
    with db.write() as conn:
        if isinstance(body.input, str):
            items = conversations.as_items(conn, [rm.MessageItem(role="user", content=body.input)])
        else:
            items = conversations.as_items(conn, body.input or [])
        response_rows.insert(conn, response, items, thread_id=thread_id)
    validate("Response", response)
    return response


def reply(text: str, *, file_search: bool = False) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if file_search:
        out.append(
            {
                "id": "fs_" + secrets.token_hex(8),
                "type": "file_search_call",
                "status": "completed",
                "queries": ["q"],
                "results": [{"file_id": "file-a", "filename": "a.txt", "text": "hit", "score": 0.9, "attributes": {}}],
            }
        )
    out.append(
        {
            "id": "msg_" + secrets.token_hex(8),
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
        }
    )
    return out


def test_retrieve_with_include(client: openai.OpenAI, db: Store) -> None:
    stored = store_response(
        db,
        {
            "model": "gpt-4o",
            "input": "Find it",
            "instructions": "Be terse.",
            "metadata": {"k": "v"},
            "tools": [
                {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}},
                {"type": "file_search", "vector_store_ids": ["vs_1"]},
                {"type": "code_interpreter", "container": {"type": "auto"}},
            ],
            "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}}},
        },
        output=reply("Found.", file_search=True),
    )
    got = client.responses.retrieve(stored["id"])
    assert got.id == stored["id"] and got.status == "completed" and got.output_text == "Found."
    assert got.output[0].type == "file_search_call" and got.output[0].results is None
    assert got.usage.input_tokens == 12 and got.usage.total_tokens == 15
    # tools are echoed with their defaults filled in
    function, file_search, code = got.tools
    assert function.strict is True
    assert file_search.max_num_results == 20 and file_search.ranking_options.ranker == "auto"
    assert code.container.type == "auto"
    assert got.text.format.type == "json_schema" and got.text.format.strict is False
    assert got.instructions == "Be terse." and got.metadata == {"k": "v"}
    assert got.temperature == 1.0 and got.top_p == 1.0 and got.truncation == "disabled" and got.store is True
    full = client.responses.retrieve(stored["id"], include=["file_search_call.results"])
    assert full.output[0].results[0].text == "hit"
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.retrieve(stored["id"], include=["no.such"])
    assert err.value.param == "include"


def test_unknown_unstored_and_deleted(client: openai.OpenAI, db: Store) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.responses.retrieve("resp_nope")
    assert err.value.body["message"] == "Response with id 'resp_nope' not found."
    hidden = store_response(db, {"model": "m", "input": "x", "store": False})
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(hidden["id"])
    stored = store_response(db, {"model": "m", "input": "x"})
    assert client.responses.delete(stored["id"]) is None  # the SDK casts the body to None
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(stored["id"])
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(stored["id"])
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.retrieve("run_abc")
    assert err.value.param == "response_id"


def test_delete_body(http: Any, db: Store) -> None:
    stored = store_response(db, {"model": "m", "input": "x"})
    r = http.delete(f"/responses/{stored['id']}")
    assert r.status_code == 200 and r.json() == {"id": stored["id"], "object": "response", "deleted": True}


def test_input_items(client: openai.OpenAI, db: Store) -> None:
    stored = store_response(
        db,
        {
            "model": "m",
            "input": [
                {"role": "developer", "content": "Rules"},
                {"role": "user", "content": [{"type": "input_text", "text": "one"}]},
                {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "two"},
                {"type": "message", "role": "assistant", "content": "three"},
            ],
        },
        output=reply("four"),
    )
    desc = client.responses.input_items.list(stored["id"]).data
    assert [i.type for i in desc] == ["message", "function_call_output", "function_call", "message", "message"]
    asc = client.responses.input_items.list(stored["id"], order="asc").data
    assert [i.id for i in asc] == [i.id for i in reversed(desc)]
    assert asc[0].role == "developer" and asc[0].content[0].text == "Rules"
    assert asc[4].role == "assistant" and asc[4].content[0].type == "output_text"
    paged = [i.id for i in client.responses.input_items.list(stored["id"], order="asc", limit=2)]
    assert paged == [i.id for i in asc]
    page = client.responses.input_items.list(stored["id"], limit=2)
    assert len(page.data) == 2 and page.has_more and page.last_id == page.data[-1].id
    assert client.responses.input_items.list(stored["id"], after="msg_unknown").data == []
    with pytest.raises(openai.NotFoundError):
        client.responses.input_items.list("resp_nope")


def test_input_tokens(client: openai.OpenAI, db: Store) -> None:
    plain = client.responses.input_tokens.count(model="gpt-4o", input="Hello there, how are you?")
    assert plain.object == "response.input_tokens"
    assert plain.input_tokens == responses.ITEM_OVERHEAD_TOKENS + count_tokens("Hello there, how are you?")
    assert client.responses.input_tokens.count().input_tokens == 0
    with_instructions = client.responses.input_tokens.count(input="Hello there, how are you?", instructions="Be terse.")
    assert with_instructions.input_tokens == plain.input_tokens + 4 + count_tokens("Be terse.")
    tool = {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}
    with_tool = client.responses.input_tokens.count(input="Hello there, how are you?", tools=[tool])
    assert with_tool.input_tokens > plain.input_tokens
    # a previous response's input and output count as input
    first = store_response(db, {"model": "m", "input": "first question"}, output=reply("first answer"))
    chained = client.responses.input_tokens.count(input="next", previous_response_id=first["id"])
    expected = 3 * responses.ITEM_OVERHEAD_TOKENS + sum(map(count_tokens, ["first question", "first answer", "next"]))
    assert chained.input_tokens == expected
    second = store_response(
        db, {"model": "m", "input": "second", "previous_response_id": first["id"]}, output=reply("ok")
    )
    longer = client.responses.input_tokens.count(input="next", previous_response_id=second["id"])
    assert longer.input_tokens == expected + 2 * 4 + count_tokens("second") + count_tokens("ok")
    # a conversation's items count as input
    conv = client.conversations.create(
        items=[
            {"role": "user", "content": "in the conversation"},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": '{"a": 1}'},
        ]
    )
    in_conv = client.responses.input_tokens.count(input="next", conversation=conv.id)
    conv_tokens = 8 + count_tokens("in the conversation") + count_tokens("f") + count_tokens('{"a": 1}')
    assert in_conv.input_tokens == conv_tokens + 4 + count_tokens("next")
    assert client.responses.input_tokens.count(input="next", conversation={"id": conv.id}).input_tokens == (
        in_conv.input_tokens
    )
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.input_tokens.count(input="x", previous_response_id="resp_nope")
    assert err.value.code == "previous_response_not_found"
    with pytest.raises(openai.NotFoundError):
        client.responses.input_tokens.count(input="x", conversation="conv_nope")
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.input_tokens.count(input="x", conversation=conv.id, previous_response_id=first["id"])
    assert "Mutually exclusive parameters" in err.value.body["message"]
