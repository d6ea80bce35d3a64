"""WebSocket mode of /v1/responses (Open Responses `x-openresponses-websocket`), driven with the `websockets`
client: `response.create` frames in, the SSE stream's `response.*` events out (each checked against the spec),
sequential responses on one connection, store:false continuation on the same connection only, eviction after a
failed continuation, stored continuation across connections, compaction items as input, and the error frames
(authentication, malformed and oversized frames, invalid requests)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from websockets.sync.client import ClientConnection, connect

from fakes import Reply, ToolCallSpec
from fakes.fake_openai import FakeOpenAI
from support.llm import llm_server
from support.server import ServerFactory, ServerHandle

from .test_create import check_event

MODEL = "gpt-4o-mini"
KEY = "test"
LIMIT = 100_000  # THREADLINE_MAX_BODY_BYTES of this module's server
TERMINAL = ("response.completed", "response.incomplete", "response.failed")


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI) -> Iterator[ServerHandle]:
    yield from llm_server(
        server_factory, backend, fake_llm, THREADLINE_API_KEYS=KEY, THREADLINE_MAX_BODY_BYTES=str(LIMIT)
    )


def ws_url(server: ServerHandle) -> str:
    return server.base_url.replace("http://", "ws://", 1) + "/responses"


def open_ws(server: ServerHandle, key: str | None = KEY) -> ClientConnection:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return connect(ws_url(server), additional_headers=headers, open_timeout=30, max_size=None)


def turn(ws: ClientConnection, body: dict[str, Any] | str) -> list[dict[str, Any]]:
    """Send one frame; the events received up to its terminal event or error frame."""
    ws.send(body if isinstance(body, str) else json.dumps({"type": "response.create", **body}))
    events = []
    while True:
        event = json.loads(ws.recv(timeout=60))
        events.append(event)
        if event["type"] in TERMINAL or event["type"] == "error":
            return events


def completed(events: list[dict[str, Any]]) -> dict[str, Any]:
    assert events[-1]["type"] == "response.completed", events[-1]
    for event in events:
        check_event(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events[-1]["response"]


def error_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(events) == 1 and events[0]["type"] == "error", events
    assert isinstance(events[0]["status"], int) and isinstance(events[0]["error"]["code"], str)
    return events[0]


def prompt_text(fake: FakeOpenAI) -> str:
    return json.dumps(fake.requests[-1]["messages"])


def test_events_match_the_sse_stream(server: ServerHandle, http: httpx.Client, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(text="one two three", chunks=3), Reply(text="one two three", chunks=3))
    with open_ws(server) as ws:
        events = turn(ws, {"model": MODEL, "input": "count"})
    response = completed(events)
    assert response["output"][0]["content"][0]["text"] == "one two three"
    sse = []
    with http.stream("POST", "/responses", json={"model": MODEL, "input": "count", "stream": True}) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                sse.append(json.loads(line[6:])["type"])
    assert [e["type"] for e in events] == sse  # the same projection, another transport
    # Stored (the default): retrievable like any response.
    assert http.get(f"/responses/{response['id']}").json()["status"] == "completed"


def test_sequential_and_store_false_continuation(server: ServerHandle, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(text="OK."), Reply(text="second"), Reply(text="cobalt"), Reply(text="recovered"))
    with open_ws(server) as ws:
        first = completed(turn(ws, {"model": MODEL, "store": False, "input": "Remember the code word: cobalt."}))
        second = completed(turn(ws, {"model": MODEL, "store": False, "input": "Reply with exactly: second"}))
        assert second["previous_response_id"] is None and "cobalt" not in prompt_text(fake_llm)
        third = completed(
            turn(
                ws,
                {"model": MODEL, "store": False, "previous_response_id": first["id"], "input": "The code word?"},
            )
        )
    assert third["previous_response_id"] == first["id"] and third["store"] is False
    sent = fake_llm.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert "cobalt" in sent[0]["content"] and sent[1]["content"] == "OK."
    # A store:false response lives only on the connection that made it.
    with open_ws(server) as ws:
        missing = error_of(
            turn(ws, {"model": MODEL, "store": False, "previous_response_id": first["id"], "input": "again"})
        )
        assert missing["status"] == 400 and missing["error"]["code"] == "previous_response_not_found"
        assert missing["error"]["param"] == "previous_response_id"
        completed(turn(ws, {"model": MODEL, "store": False, "input": "Start over."}))  # the connection goes on


def test_failed_continuation_evicts_the_cached_response(server: ServerHandle, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(text="OK."))
    stray = [{"type": "function_call_output", "call_id": "call_missing", "output": "no such call"}]
    with open_ws(server) as ws:
        first = completed(turn(ws, {"model": MODEL, "store": False, "input": "Remember: ember."}))
        failed = error_of(
            turn(ws, {"model": MODEL, "store": False, "previous_response_id": first["id"], "input": stray})
        )
        assert failed["status"] == 400 and "call_missing" in failed["error"]["message"]
        retry = error_of(
            turn(ws, {"model": MODEL, "store": False, "previous_response_id": first["id"], "input": "stale?"})
        )
    assert retry["error"]["code"] == "previous_response_not_found"
    assert len(fake_llm.requests) == 1


def test_function_call_round_trip_on_one_connection(server: ServerHandle, fake_llm: FakeOpenAI) -> None:
    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}
    fake_llm.script(Reply(tool_calls=[ToolCallSpec(name="get_weather", arguments="{}")]), Reply(text="Sunny."))
    with open_ws(server) as ws:
        first = completed(turn(ws, {"model": MODEL, "store": False, "tools": [tool], "input": "Weather?"}))
        call = next(i for i in first["output"] if i["type"] == "function_call")
        output = [{"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}]
        second = completed(
            turn(
                ws,
                {"model": MODEL, "store": False, "tools": [tool], "previous_response_id": first["id"], "input": output},
            )
        )
    assert second["output"][-1]["content"][0]["text"] == "Sunny."
    assert [m["role"] for m in fake_llm.requests[-1]["messages"]] == ["user", "assistant", "tool"]


def test_stored_response_continues_on_another_connection(server: ServerHandle, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(text="Noted: papaya."), Reply(text="papaya"))
    with open_ws(server) as ws:
        first = completed(turn(ws, {"model": MODEL, "input": "Remember papaya."}))
    with open_ws(server) as ws:
        second = completed(turn(ws, {"model": MODEL, "previous_response_id": first["id"], "input": "Which fruit?"}))
    assert second["previous_response_id"] == first["id"]
    assert "Remember papaya." in prompt_text(fake_llm) and "Noted: papaya." in prompt_text(fake_llm)


def test_compaction_output_starts_a_new_chain(
    server: ServerHandle, client: openai.OpenAI, fake_llm: FakeOpenAI
) -> None:
    fake_llm.script(Reply(text="The code word is slate."), Reply(text="compacted"))
    compacted = client.responses.compact(
        model=MODEL,
        input=[
            {"role": "user", "content": "Remember the compaction code word: slate."},
            {"role": "assistant", "content": "OK."},
        ],
    )
    window = [i.model_dump(exclude_unset=True, warnings=False) for i in compacted.output]
    with open_ws(server) as ws:
        response = completed(
            turn(
                ws,
                {
                    "model": MODEL,
                    "store": False,
                    "tools": [],
                    "input": [*window, {"role": "user", "content": "Go on."}],
                },
            )
        )
    assert response["output"][0]["content"][0]["text"] == "compacted"
    notes = [m for m in fake_llm.requests[-1]["messages"] if m["role"] == "system"]
    assert len(notes) == 1 and "The code word is slate." in notes[0]["content"]


def test_error_frames_leave_the_connection_usable(server: ServerHandle, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(text="still here"))
    with open_ws(server) as ws:
        bad_json = error_of(turn(ws, '{"type": "response.create", '))
        assert bad_json["status"] == 400 and bad_json["error"]["code"] == "invalid_json"
        wrong_type = error_of(turn(ws, json.dumps({"type": "response.cancel"})))
        assert wrong_type["error"]["param"] == "type"
        not_object = error_of(turn(ws, "[1, 2]"))
        assert not_object["status"] == 400
        invalid = error_of(turn(ws, {"model": MODEL, "input": "hi", "temperature": 5}))
        assert invalid["status"] == 400 and invalid["error"]["param"] == "temperature"
        unknown = error_of(turn(ws, {"model": MODEL, "input": "hi", "no_such_field": 1}))
        assert unknown["status"] == 400
        no_model = error_of(turn(ws, {"input": "hi"}))
        assert no_model["error"]["code"] == "missing_required_parameter"
        background = error_of(turn(ws, {"model": MODEL, "input": "hi", "background": True}))
        assert background["error"]["param"] == "background"
        too_big = error_of(turn(ws, {"model": MODEL, "input": "x" * (LIMIT + 1)}))
        assert too_big["status"] == 413 and too_big["error"]["code"] == "request_too_large"
        assert len(fake_llm.requests) == 0  # none of them reached the model
        response = completed(turn(ws, {"model": MODEL, "input": "hi"}))
    assert response["output"][0]["content"][0]["text"] == "still here"


@pytest.mark.parametrize(("key", "code"), [(None, "missing_api_key"), ("wrong-key-123456", "invalid_api_key")])
def test_unauthenticated_connection_is_refused(
    server: ServerHandle, fake_llm: FakeOpenAI, key: str | None, code: str
) -> None:
    with open_ws(server, key) as ws:
        frame = json.loads(ws.recv(timeout=30))
        assert frame["type"] == "error" and frame["status"] == 401 and frame["error"]["code"] == code
        with pytest.raises(Exception) as closed:
            ws.recv(timeout=30)
        assert getattr(closed.value, "rcvd", None) is not None and closed.value.rcvd.code == 1008
    assert len(fake_llm.requests) == 0


def test_closing_mid_stream_cancels_the_response(
    server: ServerHandle, client: openai.OpenAI, fake_llm: FakeOpenAI
) -> None:
    fake_llm.script(Reply(text="word " * 200, chunks=200, tokens_per_s=20))
    with open_ws(server) as ws:
        ws.send(json.dumps({"type": "response.create", "model": MODEL, "input": "long"}))
        response_id = json.loads(ws.recv(timeout=60))["response"]["id"]
        while json.loads(ws.recv(timeout=60))["type"] != "response.output_text.delta":
            pass
    deadline = time.monotonic() + 30
    while client.responses.retrieve(response_id).status == "in_progress" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert client.responses.retrieve(response_id).status == "cancelled"
