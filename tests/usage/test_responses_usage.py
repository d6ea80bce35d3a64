"""Usage of the Responses API: every model call of a response (sync, streamed, background, cancelled, compact)
records a `completion` row with its tokens, model, provider, latency, key and conversation, and its file_search
calls are counted; the usage and costs endpoints include them, and `/v1/organization/usage/responses/{id}` (an
extension) splits each call's prompt and prices it."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from fakes import Reply, ToolCallSpec
from support.sdk import make_client, vector_stores

from .conftest import KEY_A, KEY_B, PRICES, usd
from .test_usage_costs import get, key_id, totals

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
PRICE_A = PRICES["models"]["model-a"]
PRICE_B = PRICES["models"]["model-b"]


@pytest.fixture(scope="module")
def traffic(server, fake_llm):  # noqa: ANN001, ANN201
    """Responses with scripted token counts, made once per server: returns their ids."""
    a = make_client(server.base_url, api_key=KEY_A)
    b = make_client(server.base_url, api_key=KEY_B)
    started = int(time.time()) - 60

    fake_llm.script(Reply(text="Hello back", prompt_tokens=100, completion_tokens=10))
    sync = a.responses.create(model="model-a", input="Hello there", instructions="Be brief.")
    assert sync.status == "completed"

    # A function call, then its output sent back: two responses chained by previous_response_id.
    fake_llm.script(
        Reply(tool_calls=[ToolCallSpec("get_weather", '{"city":"Oslo"}')], prompt_tokens=300, completion_tokens=30)
    )
    with b.responses.stream(model="model-b", input="Weather in Oslo?", tools=[WEATHER]) as stream:
        for _ in stream:
            pass
        called = stream.get_final_response()
    call = next(o for o in called.output if o.type == "function_call")
    fake_llm.script(Reply(text="It is cold", prompt_tokens=400, completion_tokens=40))
    answered = b.responses.create(
        model="model-b",
        previous_response_id=called.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "cold, -5 degrees"}],
        tools=[WEATHER],
    )
    assert answered.status == "completed"

    fake_llm.script(Reply(text="In the background", prompt_tokens=50, completion_tokens=5))
    background = a.responses.create(model="model-a", input="Work quietly", background=True)
    deadline = time.monotonic() + 30
    while (background := a.responses.retrieve(background.id)).status in ("queued", "in_progress"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert background.status == "completed"

    conv = a.conversations.create(items=[{"role": "user", "content": "I live in Oslo."}])
    fake_llm.script(Reply(text="Noted", prompt_tokens=70, completion_tokens=7))
    in_conv = a.responses.create(model="model-a", input="Remember that.", conversation=conv.id)
    assert in_conv.status == "completed"

    fake_llm.script(Reply(text="A short summary", prompt_tokens=60, completion_tokens=6))
    compacted = a.responses.compact(model="model-a", previous_response_id=sync.id)
    a.close()
    b.close()
    return {
        "start": started,
        "sync": sync.id,
        "called": called.id,
        "answered": answered.id,
        "background": background.id,
        "conversation": conv.id,
        "in_conv": in_conv.id,
        "compacted": compacted.id,
    }


def test_completions_include_responses(admin, traffic) -> None:  # noqa: ANN001
    page = get(admin, "/organization/usage/completions", start_time=traffic["start"], group_by=["model"])
    sums = totals(page, "model")
    # model-a: sync 100/10, background 50/5, conversation 70/7, compaction 60/6; model-b: 300/30 + 400/40
    assert sums[("model-a",)]["input_tokens"] == 280 and sums[("model-a",)]["output_tokens"] == 28
    assert sums[("model-a",)]["num_model_requests"] == 4
    assert sums[("model-b",)]["input_tokens"] == 700 and sums[("model-b",)]["output_tokens"] == 70
    assert sums[("model-b",)]["num_model_requests"] == 2
    by_key = totals(
        get(admin, "/organization/usage/completions", start_time=traffic["start"], group_by=["api_key_id"]),
        "api_key_id",
    )
    assert by_key[(key_id(KEY_A),)]["input_tokens"] == 280 and by_key[(key_id(KEY_B),)]["input_tokens"] == 700


def test_costs_include_responses(admin, traffic) -> None:  # noqa: ANN001
    page = get(admin, "/organization/costs", start_time=traffic["start"], group_by=["line_item"])
    sums = totals(page, "line_item")
    assert sums[("model-a, input",)]["amount"] == pytest.approx(280 * PRICE_A["input_per_mtok"] / 1e6)
    assert sums[("model-b, output",)]["amount"] == pytest.approx(70 * PRICE_B["output_per_mtok"] / 1e6)
    total = totals(get(admin, "/organization/costs", start_time=traffic["start"]))[()]["amount"]
    assert total == pytest.approx(usd(PRICE_A, 280, 28) + usd(PRICE_B, 700, 70))


def test_conversation_is_the_thread(admin, traffic) -> None:  # noqa: ANN001
    thread_id = "thread_" + traffic["conversation"].removeprefix("conv_")
    page = get(admin, "/organization/usage/completions", start_time=traffic["start"], group_by=["thread_id"])
    sums = totals(page, "thread_id")
    assert sums[(thread_id,)]["input_tokens"] == 70
    assert sums[(None,)]["input_tokens"] == 910  # the responses on no conversation
    for ids in ([thread_id], [traffic["conversation"]]):  # filtered by either id
        page = get(admin, "/organization/usage/completions", start_time=traffic["start"], thread_ids=ids)
        assert totals(page)[()]["input_tokens"] == 70


def test_response_breakdown(admin, traffic) -> None:  # noqa: ANN001
    sync = get(admin, f"/organization/usage/responses/{traffic['sync']}")
    assert sync["object"] == "organization.usage.response" and sync["response_id"] == traffic["sync"]
    assert sync["api_key_id"] == key_id(KEY_A) and sync["project_id"] == "proj_default"
    assert sync["conversation_id"] is None
    [turn] = sync["turns"]
    assert turn["input_tokens"] == 100 and turn["output_tokens"] == 10 and turn["model"] == "model-a"
    assert turn["provider"] == "openai" and turn["latency_ms"] is not None and turn["latency_ms"] >= 0
    assert turn["estimated"] is False
    parts = turn["prompt_tokens_by_source"]
    assert parts["instructions"] > 0 and parts["input"] > 0 and parts["history"] == 0
    assert sync["cost"]["total"] == pytest.approx(usd(PRICE_A, 100, 10))
    assert sync["cost"]["instructions"] == pytest.approx(parts["instructions"] * PRICE_A["input_per_mtok"] / 1e6)

    answered = get(admin, f"/organization/usage/responses/{traffic['answered']}")
    [turn] = answered["turns"]
    # the previous response's input and call are re-sent as history; the function's output is a tool output
    assert turn["prompt_tokens_by_source"]["history"] > 0 and turn["prompt_tokens_by_source"]["tool_outputs"] > 0
    assert answered["api_key_id"] == key_id(KEY_B)
    assert answered["cost"]["total"] == pytest.approx(usd(PRICE_B, 400, 40))

    in_conv = get(admin, f"/organization/usage/responses/{traffic['in_conv']}")
    assert in_conv["conversation_id"] == traffic["conversation"]
    assert in_conv["turns"][0]["prompt_tokens_by_source"]["history"] > 0  # the conversation's earlier item

    background = get(admin, f"/organization/usage/responses/{traffic['background']}")
    assert [t["input_tokens"] for t in background["turns"]] == [50]

    compacted = get(admin, f"/organization/usage/responses/{traffic['compacted']}")
    [turn] = compacted["turns"]
    assert turn["input_tokens"] == 60 and turn["output_tokens"] == 6
    assert turn["prompt_tokens_by_source"]["history"] > 0

    missing = admin.get("/organization/usage/responses/resp_nope")
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "No response found with id 'resp_nope'."


def test_file_search_in_a_response(admin, server, fake_llm) -> None:  # noqa: ANN001
    client = make_client(server.base_url, api_key=KEY_A)
    start = int(time.time()) - 60
    stores = vector_stores(client)
    store = stores.create(name="kb")
    data = b"Zebras have black and white stripes. The stripes help with thermoregulation."
    assert stores.files.upload_and_poll(vector_store_id=store.id, file=("zebras.txt", data)).status == "completed"
    fake_llm.script(
        Reply(
            tool_calls=[ToolCallSpec("file_search", json.dumps({"queries": ["zebra"]}))],
            prompt_tokens=120,
            completion_tokens=4,
        ),
        Reply(text="To keep cool.", prompt_tokens=480, completion_tokens=6),
    )
    tool = {"type": "file_search", "vector_store_ids": [store.id]}
    response = client.responses.create(model="model-b", input="Why stripes?", tools=[tool])
    client.close()
    assert [o.type for o in response.output] == ["file_search_call", "message"]
    detail = get(admin, f"/organization/usage/responses/{response.id}")
    assert [t["input_tokens"] for t in detail["turns"]] == [120, 480]
    assert detail["turns"][0]["prompt_tokens_by_source"]["retrieved_chunks"] == 0
    assert detail["turns"][1]["prompt_tokens_by_source"]["retrieved_chunks"] > 0  # the results, re-sent
    assert detail["tools"] == {"file_search_calls": 1, "code_interpreter_sessions": 0}
    fs_price = PRICES["tools"]["file_search_call"]
    assert detail["cost"]["tools"]["file_search_calls"] == pytest.approx(fs_price)
    assert detail["cost"]["total"] == pytest.approx(usd(PRICE_B, 600, 10) + fs_price)
    page = get(admin, "/organization/usage/file_search_calls", start_time=start, group_by=["vector_store_id"])
    assert totals(page, "vector_store_id") == {(store.id,): {"num_requests": 1}}


def test_cancelled_background_response_records_its_call(admin, server, fake_llm) -> None:  # noqa: ANN001
    client = make_client(server.base_url, api_key=KEY_B)
    fake_llm.script(Reply(text="never " * 60, chunks=60, tokens_per_s=6))
    stream = client.responses.create(model="model-b", input="a long question", background=True, stream=True)
    response_id = None
    for event in stream:  # until the reply has begun
        if event.type == "response.created":
            response_id = event.response.id
        if event.type == "response.output_text.delta":
            break
    stream.close()
    assert response_id is not None
    created = client.responses.retrieve(response_id)
    assert client.responses.cancel(created.id).status == "cancelled"
    client.close()
    deadline = time.monotonic() + 30
    while (found := admin.get(f"/organization/usage/responses/{created.id}")).status_code == 404:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    [turn] = found.json()["turns"]
    assert turn["estimated"] is True
    assert turn["input_tokens"] == sum(turn["prompt_tokens_by_source"].values()) > 0
    assert 0 < turn["output_tokens"] < 60  # the reply so far


def test_stream_cut_short_records_its_call(admin, server, fake_llm) -> None:  # noqa: ANN001
    """A streamed response whose client goes away ends cancelled: its model call is recorded, estimated."""
    fake_llm.script(Reply(text="word " * 200, chunks=200, tokens_per_s=20))
    response_id = None
    headers = {"Authorization": f"Bearer {KEY_A}"}
    body = {"model": "model-a", "input": "tell me everything", "stream": True}
    with (
        httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as http,
        http.stream("POST", "/responses", json=body) as response,
    ):
        for line in response.iter_lines():
            if line.startswith("data: ") and '"response.created"' in line:
                response_id = json.loads(line[6:])["response"]["id"]
            if line.startswith("data: ") and '"response.output_text.delta"' in line:
                break
    assert response_id is not None
    deadline = time.monotonic() + 30
    while (found := admin.get(f"/organization/usage/responses/{response_id}")).status_code == 404:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    [turn] = found.json()["turns"]
    assert turn["estimated"] is True and turn["input_tokens"] > 0 and 0 < turn["output_tokens"] < 200
    assert found.json()["api_key_id"] == key_id(KEY_A)
