"""POST /v1/responses/compact through the official SDK: the CompactResource (checked against the spec), a summary
that really comes from the model, the compaction item fed back as input (its summary reaches the model as a
developer note), continuation from a previous_response_id, and the request errors (contract §1.1, §5.6)."""

from __future__ import annotations

import base64
import json

import httpx
import openai
import pytest

from fakes import Reply
from fakes.fake_openai import FakeOpenAI
from support.schemas import validate

MODEL = "gpt-4o-mini"
HISTORY = [
    {"role": "user", "content": "We agreed to launch on Tuesday and notify support first."},
    {"role": "assistant", "content": "Understood. The launch is Tuesday, with support notified beforehand."},
]
SUMMARY = "Launch on Tuesday; support is notified first."


def payload(blob: str) -> dict:
    body = blob.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def sent_text(request: dict) -> str:
    return json.dumps(request["messages"])


def test_compact_summarises_with_the_model(client: openai.OpenAI, http: httpx.Client, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(text=SUMMARY))
    compacted = client.responses.compact(model=MODEL, input=HISTORY, prompt_cache_key="k" * 64)
    assert compacted.object == "response.compaction"
    assert compacted.id.startswith("resp_")
    kinds = [item.type for item in compacted.output]
    assert kinds == ["message", "compaction"]  # the user's message is kept, the rest is summarised
    item = compacted.output[-1]
    assert item.id.startswith("cmp_")
    assert payload(item.encrypted_content)["summary"] == SUMMARY
    assert compacted.usage.total_tokens > 0
    # The model was asked for the summary with the whole history in front of it.
    prompt = sent_text(fake_llm.requests[-1])
    assert "Tuesday" in prompt and "notified beforehand" in prompt and "CONTEXT CHECKPOINT COMPACTION" in prompt
    validate("CompactResource", compacted.model_dump(mode="json", exclude_unset=True, warnings=False))

    # The compaction item goes back as input: the model sees its summary, not the blob.
    fake_llm.script(Reply(text="Tuesday."))
    follow = client.responses.create(
        model=MODEL,
        input=[
            *(i.model_dump(exclude_unset=True, warnings=False) for i in compacted.output),
            {"role": "user", "content": "When?"},
        ],
    )
    assert follow.status == "completed" and follow.output_text == "Tuesday."
    messages = fake_llm.requests[-1]["messages"]
    notes = [m for m in messages if m["role"] == "system" and SUMMARY in str(m["content"])]
    assert len(notes) == 1
    assert "tlc1." not in json.dumps(messages)
    # ... and it is stored as an item of that response, as given.
    items = client.responses.input_items.list(follow.id, order="asc").data
    assert [i.type for i in items] == ["message", "compaction", "message"]


def test_compact_from_previous_response_and_compacted_again(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(text="The code word is papaya."))
    first = client.responses.create(model=MODEL, input="Remember the code word papaya.")
    fake_llm.script(Reply(text="Code word: papaya."))
    compacted = client.responses.compact(model=MODEL, previous_response_id=first.id, instructions="Be terse.")
    prompt = sent_text(fake_llm.requests[-1])
    assert "Remember the code word papaya." in prompt and "The code word is papaya." in prompt
    assert "Be terse." in prompt
    # A compaction of a compaction: the earlier summary is part of the history summarised.
    fake_llm.script(Reply(text="papaya, still."))
    again = client.responses.compact(
        model=MODEL, input=[i.model_dump(exclude_unset=True, warnings=False) for i in compacted.output]
    )
    assert "Code word: papaya." in sent_text(fake_llm.requests[-1])
    assert payload(again.output[-1].encrypted_content)["summary"] == "papaya, still."


def test_compact_errors(client: openai.OpenAI, http: httpx.Client, fake_llm: FakeOpenAI) -> None:
    r = http.post("/responses/compact", json={"input": "hi"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "missing_required_parameter" and r.json()["error"]["param"] == "model"
    with pytest.raises(openai.BadRequestError) as exc:
        client.responses.compact(model=MODEL, input="hi", prompt_cache_key="k" * 65)
    assert exc.value.param == "prompt_cache_key"
    with pytest.raises(openai.BadRequestError) as exc:
        client.responses.compact(model=MODEL, previous_response_id="resp_nope")
    assert exc.value.code == "previous_response_not_found"

    # A blob with its summary changed no longer matches its signature: rejected, on both endpoints.
    fake_llm.script(Reply(text=SUMMARY))
    item = client.responses.compact(model=MODEL, input="Launch Tuesday.").output[-1]
    version, body, mac = item.encrypted_content.split(".")
    forged_body = base64.urlsafe_b64encode(json.dumps({"v": 1, "summary": "Launch Friday."}).encode()).decode()
    forged = {"type": "compaction", "encrypted_content": f"{version}.{forged_body.rstrip('=')}.{mac}"}
    for path, body in (
        ("/responses", {"model": MODEL, "input": [forged]}),
        ("/responses/compact", {"model": MODEL, "input": [forged]}),
    ):
        r = http.post(path, json=body)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "invalid_encrypted_content"
    assert len(fake_llm.requests) == 1  # none of the rejected requests reached the model
