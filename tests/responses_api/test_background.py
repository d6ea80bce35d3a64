"""Background responses (contract §3.3 h, §5.1): queued and executed by the workers, polled, cancelled
(idempotently), and their recorded streams replayed and resumed with `starting_after`, original sequence numbers
kept."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from fakes import Reply
from fakes.fake_openai import FakeOpenAI

from .test_create import MODEL, check_event, check_sequence, sse_events


def poll(client: openai.OpenAI, response_id: str, timeout_s: float = 60.0) -> openai.types.responses.Response:
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.responses.retrieve(response_id)
        if response.status not in ("queued", "in_progress") or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


def test_background_poll(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(text="done in the background"))
    created = client.responses.create(model=MODEL, input="work", background=True)
    assert created.status == "queued" and created.background is True and created.usage is None
    final = poll(client, created.id)
    assert final.status == "completed" and final.output_text == "done in the background"
    assert final.usage is not None and final.usage.total_tokens > 0


def test_background_requires_store(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model=MODEL, input="x", background=True, store=False)


def test_background_stream_replay_and_resume(http: httpx.Client, client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(text="a b c d e f", chunks=6))
    events, done = sse_events(http, {"model": MODEL, "input": "go", "background": True, "stream": True})
    assert done
    check_sequence(events)
    kinds = [e["type"] for e in events]
    assert kinds[:3] == ["response.created", "response.queued", "response.in_progress"]
    assert events[0]["response"]["status"] == "queued" and kinds[-1] == "response.completed"
    response_id = events[0]["response"]["id"]
    # a full replay, then a resumed one: strictly later events with their original numbers
    again, done = sse_events(http, None, f"/responses/{response_id}?stream=true")
    assert done and again == events
    tail, done = sse_events(http, None, f"/responses/{response_id}?stream=true&starting_after=4")
    assert done and tail == events[5:]
    # the SDK: retrieve(stream=True, starting_after=N) sends the cursor; the stream helper filters locally
    with client.responses.retrieve(response_id, stream=True, starting_after=6) as stream:
        got = [e.sequence_number for e in stream]
    assert got == [e["sequence_number"] for e in events[7:]]
    with client.responses.stream(response_id=response_id, starting_after=2) as stream:
        for event in stream:
            check_event(event.model_dump(mode="json", exclude_unset=True))
        final = stream.get_final_response()
    assert final.output_text == "a b c d e f"


def test_resume_while_running(http: httpx.Client, client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(text="slow " * 12, chunks=12, tokens_per_s=8))
    created = client.responses.create(model=MODEL, input="go", background=True)
    deadline = time.monotonic() + 30
    while client.responses.retrieve(created.id).status == "queued" and time.monotonic() < deadline:
        time.sleep(0.05)
    events, done = sse_events(http, None, f"/responses/{created.id}?stream=true&starting_after=1")
    assert done and events[0]["sequence_number"] == 2
    check_sequence(events)
    assert events[-1]["type"] == "response.completed"
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == "slow " * 12


def test_cancel_background(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(text="never " * 50, chunks=50, tokens_per_s=5))
    created = client.responses.create(model=MODEL, input="long", background=True)
    deadline = time.monotonic() + 30
    while client.responses.retrieve(created.id).status == "queued" and time.monotonic() < deadline:
        time.sleep(0.05)
    cancelled = client.responses.cancel(created.id)
    assert cancelled.status == "cancelled"
    assert client.responses.cancel(created.id).status == "cancelled"  # idempotent
    time.sleep(1.0)  # the executor has stopped: nothing moves the response any more
    final = client.responses.retrieve(created.id)
    assert final.status == "cancelled"
    assert all(item.status != "in_progress" for item in final.output)


def test_cancel_queued_and_errors(client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(text="sync"))
    sync = client.responses.create(model=MODEL, input="x")
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.cancel(sync.id)
    assert "background" in err.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        client.responses.cancel("resp_missing")
    with pytest.raises(openai.BadRequestError):
        client.responses.retrieve(sync.id, stream=True)  # only background responses keep their stream


def test_stream_disconnect_stops_generation(http: httpx.Client, client: openai.OpenAI, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(text="word " * 200, chunks=200, tokens_per_s=20))
    response_id = None
    with http.stream("POST", "/responses", json={"model": MODEL, "input": "long", "stream": True}) as response:
        for line in response.iter_lines():
            if line.startswith("data: ") and '"response.output_text.delta"' in line:
                break
            if line.startswith("data: ") and '"response.created"' in line:
                response_id = line.split('"id":"', 1)[1].split('"', 1)[0]
    assert response_id is not None
    deadline = time.monotonic() + 20
    while client.responses.retrieve(response_id).status == "in_progress" and time.monotonic() < deadline:
        time.sleep(0.1)
    final = client.responses.retrieve(response_id)
    assert final.status == "cancelled"
    assert len(fake_llm.requests) == 1  # nothing was generated after it
