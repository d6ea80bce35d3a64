"""code_interpreter in Responses (contract §2.4, §2.5, §3.3 d, §5.8): the code runs in the tool's container (or in
an auto container made for the response), files the code writes become container files cited by
`container_file_citation` annotations over the markdown link, the item's events come in the contract's order (each
checked against the spec's ResponseStreamEvent), and an unknown or malformed container is refused before anything
runs."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from fakes import Reply, ToolCallSpec
from fakes.fake_openai import FakeOpenAI
from sdk.helpers import expect_error
from support.schemas import spec, validate

MODEL = "gpt-4o-mini"
CSV = b"month,amount\njan,10\nfeb,20\n"
WRITE = (
    "import pandas as pd\n"
    "df = pd.read_csv('/mnt/data/sales.csv')\n"
    "print(int(df.amount.sum()))\n"
    "df.to_csv('/mnt/data/copy.csv', index=False)\n"
)
LINK = "[the copy](sandbox:/mnt/data/copy.csv)"
REPLY = f"The total is 30. Download {LINK} when ready."


def _event_schemas() -> dict[str, str]:
    out = {}
    for member in spec()["components"]["schemas"]["ResponseStreamEvent"]["anyOf"]:
        name = member["$ref"].rsplit("/", 1)[-1]
        kind = spec()["components"]["schemas"][name]["properties"]["type"]
        for value in kind.get("enum") or [kind.get("const")]:
            out[value] = name
    return out


def stream(http: httpx.Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    """A streamed response's events, each checked against the spec; the stream must end with [DONE]."""
    schemas = _event_schemas()
    events: list[dict[str, Any]] = []
    done = False
    with http.stream("POST", "/responses", json=body) as response:
        assert response.status_code == 200, response.read()
        name = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data = line[len("data: ") :]
                if data == "[DONE]":
                    done = True
                    continue
                event = json.loads(data)
                assert event["type"] == name
                validate(schemas[event["type"]], event)
                events.append(event)
    assert done
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def test_streamed_code_interpreter_in_a_container(client: openai.OpenAI, http: httpx.Client, fake_llm: FakeOpenAI):
    container = client.containers.create(name="streamed")
    client.containers.files.create(container_id=container.id, file=("sales.csv", CSV))
    fake_llm.script(
        Reply(tool_calls=[ToolCallSpec("code_interpreter", json.dumps({"code": WRITE}))]),
        Reply(text=REPLY, chunks=9),  # the link arrives in pieces: it is held back and cited whole
    )
    body = {
        "model": MODEL,
        "input": "Sum the sales and give me a copy.",
        "tools": [{"type": "code_interpreter", "container": container.id}],
        "include": ["code_interpreter_call.outputs"],
        "stream": True,
    }
    events = stream(http, body)
    kinds = [e["type"] for e in events]
    start = kinds.index("response.output_item.added")
    end = kinds.index("response.output_item.done")
    assert kinds[start : end + 1] == [
        "response.output_item.added",
        "response.code_interpreter_call.in_progress",
        "response.code_interpreter_call_code.delta",
        "response.code_interpreter_call_code.done",
        "response.code_interpreter_call.interpreting",
        "response.code_interpreter_call.completed",
        "response.output_item.done",
    ]
    added, done = events[start]["item"], events[end]["item"]
    assert added["id"].startswith("ci_") and added["container_id"] == container.id
    assert added["status"] == "in_progress" and added["code"] == "" and added["outputs"] == []
    assert events[start + 2]["delta"] == WRITE and events[start + 3]["code"] == WRITE
    assert {events[i]["item_id"] for i in range(start, end + 1) if "item_id" in events[i]} == {added["id"]}
    assert done["status"] == "completed" and done["code"] == WRITE and done["container_id"] == container.id
    assert done["outputs"] == [{"type": "logs", "logs": "30\n"}]

    made = [f for f in client.containers.files.list(container_id=container.id).data if f.source == "assistant"]
    assert [f.path for f in made] == ["/mnt/data/copy.csv"]
    cited = [e for e in events if e["type"] == "response.output_text.annotation.added"]
    assert len(cited) == 1
    annotation = cited[0]["annotation"]
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == REPLY
    assert annotation == {
        "type": "container_file_citation",
        "container_id": container.id,
        "file_id": made[0].id,
        "filename": "copy.csv",
        "start_index": REPLY.index(LINK),
        "end_index": REPLY.index(LINK) + len(LINK),
    }
    assert cited[0]["annotation_index"] == 0
    # the link arrived whole in one delta, with the text before it already sent
    assert any(LINK in e["delta"] for e in events if e["type"] == "response.output_text.delta")
    final = events[-1]
    assert kinds[-1] == "response.completed"
    assert kinds.index("response.output_text.done") > kinds.index("response.output_text.annotation.added")
    message = final["response"]["output"][-1]
    assert message["content"][0]["annotations"] == [annotation]
    assert client.containers.files.content.retrieve(made[0].id, container_id=container.id).read() == CSV
    # Running code made the container active.
    assert client.containers.retrieve(container.id).last_active_at >= container.last_active_at
    # The stored response keeps the citation; without include the outputs are null.
    stored = client.responses.retrieve(final["response"]["id"])
    assert stored.output[0].type == "code_interpreter_call" and stored.output[0].outputs is None
    assert stored.output[-1].content[0].annotations[0].file_id == made[0].id


def test_auto_container_reused_by_every_call(client: openai.OpenAI, fake_llm: FakeOpenAI):
    f = client.files.create(file=("sales.csv", CSV), purpose="user_data")
    fake_llm.script(
        Reply(tool_calls=[ToolCallSpec("code_interpreter", json.dumps({"code": WRITE}))]),
        Reply(tool_calls=[ToolCallSpec("code_interpreter", json.dumps({"code": "print(len(df))"}))]),
        Reply(text=f"Done: {LINK}"),
    )
    r = client.responses.create(
        model=MODEL,
        input="Sum the sales.",
        tools=[{"type": "code_interpreter", "container": {"type": "auto", "file_ids": [f.id]}}],
        include=["code_interpreter_call.outputs"],
    )
    assert r.status == "completed"
    assert r.tools[0].container.type == "auto"  # the echo is the request's tool
    calls = [o for o in r.output if o.type == "code_interpreter_call"]
    assert len(calls) == 2 and calls[0].container_id == calls[1].container_id
    cid = calls[0].container_id
    assert cid.startswith("cntr_")
    # the second call sees the first one's variables: one session, one container
    assert [o.logs.strip() for c in calls for o in c.outputs or []] == ["30", "2"]
    container = client.containers.retrieve(cid)
    assert container.status == "running" and container.name == r.id
    files = {x.path: x for x in client.containers.files.list(container_id=cid).data}
    assert files["/mnt/data/sales.csv"].source == "user" and files["/mnt/data/copy.csv"].source == "assistant"
    [citation] = r.output[-1].content[0].annotations
    assert citation.type == "container_file_citation" and citation.container_id == cid
    assert citation.file_id == files["/mnt/data/copy.csv"].id

    # each response with an auto container gets its own
    fake_llm.script(
        Reply(tool_calls=[ToolCallSpec("code_interpreter", json.dumps({"code": "print('df' in globals())"}))]),
        Reply(text="No."),
    )
    again = client.responses.create(
        model=MODEL, input="Again.", tools=[{"type": "code_interpreter", "container": {"type": "auto"}}]
    )
    other = next(o for o in again.output if o.type == "code_interpreter_call")
    assert other.container_id != cid and other.outputs is None
    assert client.containers.files.list(container_id=other.container_id).data == []


@pytest.mark.parametrize(
    ("container", "error", "check"),
    [
        ("cntr_missing", openai.NotFoundError, {"message": "Container with id 'cntr_missing' not found."}),
        ("abc", openai.BadRequestError, {"contains": "'tools[0].container'", "param": "tools[0].container"}),
        ({"type": "auto", "file_ids": ["file-missing"]}, openai.NotFoundError, {"contains": "'file-missing'"}),
        ({"type": "auto", "file_ids": ["abc"]}, openai.BadRequestError, {"param": "tools[0].container.file_ids[0]"}),
        (
            {"type": "auto", "network_policy": {"type": "allowlist", "allowed_domains": ["example.com"]}},
            openai.BadRequestError,
            {"param": "tools[0].container.network_policy"},
        ),
    ],
)
def test_unusable_container_is_refused_before_anything_runs(
    client: openai.OpenAI, fake_llm: FakeOpenAI, container: Any, error: type, check: dict[str, str]
):
    before = {c.id for c in client.containers.list(limit=100)}
    fake_llm.script(Reply(text="never"))
    expect_error(
        error,
        lambda: client.responses.create(
            model=MODEL, input="Hi.", tools=[{"type": "code_interpreter", "container": container}]
        ),
        **check,
    )
    assert fake_llm.requests == []
    assert {c.id for c in client.containers.list(limit=100)} == before  # no auto container left behind


def test_refused_request_leaves_no_auto_container(client: openai.OpenAI, fake_llm: FakeOpenAI):
    before = {c.id for c in client.containers.list(limit=100)}
    expect_error(
        openai.BadRequestError,
        lambda: client.responses.create(
            model=MODEL,
            input="Hi.",
            tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
            tool_choice={"type": "function", "name": "nope"},
        ),
        "Tool choice 'nope' not found in 'tools' parameter.",
    )
    assert {c.id for c in client.containers.list(limit=100)} == before


def test_code_interpreter_items_on_a_conversation(client: openai.OpenAI, http: httpx.Client, fake_llm: FakeOpenAI):
    container = client.containers.create(name="conversation")
    client.containers.files.create(container_id=container.id, file=("sales.csv", CSV))
    conversation = client.conversations.create()
    fake_llm.script(
        Reply(tool_calls=[ToolCallSpec("code_interpreter", json.dumps({"code": WRITE}))]),
        Reply(text=REPLY),
    )
    r = client.responses.create(
        model=MODEL,
        input="Sum the sales.",
        conversation=conversation.id,
        tools=[{"type": "code_interpreter", "container": container.id}],
    )
    assert r.status == "completed"
    items = http.get(
        f"/conversations/{conversation.id}/items",
        params={"order": "asc", "include[]": "code_interpreter_call.outputs"},
    ).json()["data"]
    assert [i["type"] for i in items] == ["message", "code_interpreter_call", "message"]
    call = items[1]
    assert call["container_id"] == container.id and call["code"] == WRITE and call["status"] == "completed"
    assert call["outputs"] == [{"type": "logs", "logs": "30\n"}]
    [annotation] = items[2]["content"][0]["annotations"]
    assert annotation["type"] == "container_file_citation" and annotation["container_id"] == container.id
    # the next turn's prompt shows the model its code and the reply
    fake_llm.script(Reply(text="Yes."))
    client.responses.create(model=MODEL, input="Sure?", conversation=conversation.id)
    assert "sandbox:/mnt/data/copy.csv" in json.dumps(fake_llm.requests[-1]["messages"])
