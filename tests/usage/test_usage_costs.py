"""Usage and costs through the administration API: runs with known token counts (scripted by the fake LLM) and a
test price file give exact sums per model, key, assistant and thread, and exact amounts; every response is
validated against OpenAI's spec."""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict

import pytest

from fakes import Reply, ToolCallSpec

from .conftest import KEY_A, KEY_B

DAY = 86400
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def key_id(key: str) -> str:
    return "key_" + hashlib.sha256(key.encode()).hexdigest()[:16]


@pytest.fixture(scope="module")
def traffic(server, fake_llm):  # noqa: ANN001, ANN201
    """Four runs with scripted token counts, made once per server: returns the ids the tests group by."""
    from support.sdk import make_client

    a = make_client(server.base_url, api_key=KEY_A)
    b = make_client(server.base_url, api_key=KEY_B)
    started = int(time.time())
    asst_a = a.beta.assistants.create(model="model-a", instructions="Be brief.")
    asst_b = b.beta.assistants.create(model="model-b", instructions="Use tools.", tools=[WEATHER])
    asst_m = a.beta.assistants.create(model="mystery-model-xyz")
    t1 = a.beta.threads.create(messages=[{"role": "user", "content": "Hello there"}])
    t2 = b.beta.threads.create(messages=[{"role": "user", "content": "Weather in Paris?"}])
    t3 = a.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])

    fake_llm.script(Reply(text="First answer", prompt_tokens=100, completion_tokens=10))
    r1 = a.beta.threads.runs.create_and_poll(thread_id=t1.id, assistant_id=asst_a.id, poll_interval_ms=20)
    a.beta.threads.messages.create(thread_id=t1.id, role="user", content="And again")
    fake_llm.script(Reply(text="Second answer", prompt_tokens=200, completion_tokens=20))
    r2 = a.beta.threads.runs.create_and_poll(thread_id=t1.id, assistant_id=asst_a.id, poll_interval_ms=20)

    fake_llm.script(
        Reply(tool_calls=[ToolCallSpec("get_weather", '{"city":"Paris"}')], prompt_tokens=300, completion_tokens=30),
        Reply(text="It is sunny", prompt_tokens=400, completion_tokens=40),
    )
    r3 = b.beta.threads.runs.create_and_poll(thread_id=t2.id, assistant_id=asst_b.id, poll_interval_ms=20)
    assert r3.status == "requires_action"
    call = r3.required_action.submit_tool_outputs.tool_calls[0]
    r3 = b.beta.threads.runs.submit_tool_outputs_and_poll(
        thread_id=t2.id,
        run_id=r3.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "sunny, 25 degrees"}],
        poll_interval_ms=20,
    )
    fake_llm.script(Reply(text="Hey", prompt_tokens=50, completion_tokens=5))
    r4 = a.beta.threads.runs.create_and_poll(thread_id=t3.id, assistant_id=asst_m.id, poll_interval_ms=20)
    for run in (r1, r2, r3, r4):
        assert run.status == "completed", run
    a.close()
    b.close()
    return {
        "start": started - 60,
        "assistants": (asst_a.id, asst_b.id, asst_m.id),
        "threads": (t1.id, t2.id, t3.id),
        "runs": (r1.id, r2.id, r3.id, r4.id),
    }


def totals(page: dict, *keys: str) -> dict[tuple, dict[str, float]]:
    """Sum every bucket's results per group (the traffic may straddle a bucket boundary)."""
    out: dict[tuple, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for bucket in page["data"]:
        assert bucket["object"] == "bucket"
        assert bucket["end_time"] - bucket["start_time"] in (60, 3600, DAY)
        for result in bucket["results"]:
            group = tuple(result.get(k) for k in keys)
            for name, value in result.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    out[group][name] += value
                elif name == "amount":
                    out[group]["amount"] += value["value"]
    return {k: dict(v) for k, v in out.items()}


def get(admin, path: str, **params) -> dict:  # noqa: ANN001
    response = admin.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_completions_grouped_by_model(admin, traffic) -> None:  # noqa: ANN001
    page = get(admin, "/organization/usage/completions", start_time=traffic["start"], group_by=["model"])
    assert page["object"] == "page" and page["has_more"] is False and page["next_page"] is None
    sums = totals(page, "model")
    assert sums[("model-a",)]["input_tokens"] == 300 and sums[("model-a",)]["output_tokens"] == 30
    assert sums[("model-a",)]["num_model_requests"] == 2
    assert sums[("model-b",)]["input_tokens"] == 700 and sums[("model-b",)]["output_tokens"] == 70
    assert sums[("model-b",)]["num_model_requests"] == 2
    assert sums[("mystery-model-xyz",)]["input_tokens"] == 50
    assert set(sums) == {("model-a",), ("model-b",), ("mystery-model-xyz",)}


def test_completions_ungrouped_and_by_key_project(admin, traffic) -> None:  # noqa: ANN001
    page = get(admin, "/organization/usage/completions", start_time=traffic["start"])
    assert totals(page)[()]["input_tokens"] == 1050 and totals(page)[()]["output_tokens"] == 105
    for bucket in page["data"]:
        for result in bucket["results"]:
            assert result["model"] is None and result["project_id"] is None and result["api_key_id"] is None
    page = get(admin, "/organization/usage/completions", start_time=traffic["start"], group_by=["api_key_id"])
    sums = totals(page, "api_key_id")
    assert sums[(key_id(KEY_A),)]["input_tokens"] == 350 and sums[(key_id(KEY_B),)]["input_tokens"] == 700
    page = get(admin, "/organization/usage/completions", start_time=traffic["start"], group_by=["project_id"])
    assert totals(page, "project_id")[("proj_default",)]["num_model_requests"] == 5


def test_completions_by_assistant_and_thread_extensions(admin, traffic) -> None:  # noqa: ANN001
    asst_a, asst_b, asst_m = traffic["assistants"]
    page = get(admin, "/organization/usage/completions", start_time=traffic["start"], group_by=["assistant_id"])
    sums = totals(page, "assistant_id")
    assert {k[0]: v["input_tokens"] for k, v in sums.items()} == {asst_a: 300, asst_b: 700, asst_m: 50}
    t1, t2, t3 = traffic["threads"]
    page = get(admin, "/organization/usage/completions", start_time=traffic["start"], group_by=["thread_id", "model"])
    sums = totals(page, "thread_id", "model")
    assert {k: v["output_tokens"] for k, v in sums.items()} == {
        (t1, "model-a"): 30,
        (t2, "model-b"): 70,
        (t3, "mystery-model-xyz"): 5,
    }


def test_filters(admin, traffic) -> None:  # noqa: ANN001
    page = get(admin, "/organization/usage/completions", start_time=traffic["start"], models=["model-b"])
    assert totals(page)[()]["input_tokens"] == 700
    page = get(admin, "/organization/usage/completions", start_time=traffic["start"], api_key_ids=[key_id(KEY_A)])
    assert totals(page)[()]["input_tokens"] == 350
    page = get(admin, "/organization/usage/completions", start_time=traffic["start"], user_ids=["user_x"])
    assert totals(page) == {}  # nothing here has a user


def test_minute_buckets_and_pages(admin, traffic) -> None:  # noqa: ANN001
    start = traffic["start"] - 600
    page = get(admin, "/organization/usage/completions", start_time=start, bucket_width="1m", limit=1440)
    buckets = page["data"]
    assert buckets[0]["start_time"] == start - start % 60
    assert all(b["end_time"] == b["start_time"] + 60 for b in buckets)
    assert all(n["start_time"] == b["end_time"] for b, n in zip(buckets, buckets[1:], strict=False))
    assert totals(page)[()]["input_tokens"] == 1050
    # Pages of 3 buckets cover the same buckets, in order, with nothing lost.
    seen, params = [], {"start_time": start, "bucket_width": "1m", "limit": 3}
    while True:
        part = get(admin, "/organization/usage/completions", **params)
        seen += part["data"]
        if not part["has_more"]:
            break
        params["page"] = part["next_page"]
    assert [b["start_time"] for b in seen][: len(buckets)] == [b["start_time"] for b in buckets]
    assert sum(r["input_tokens"] for b in seen for r in b["results"]) == 1050


def test_costs_by_line_item(admin, traffic) -> None:  # noqa: ANN001
    page = get(admin, "/organization/costs", start_time=traffic["start"], group_by=["line_item"], limit=2)
    sums = totals(page, "line_item")
    assert sums[("model-a, input",)]["amount"] == pytest.approx(300 * 1.0 / 1e6)
    assert sums[("model-a, output",)]["amount"] == pytest.approx(30 * 2.0 / 1e6)
    assert sums[("model-b, input",)]["amount"] == pytest.approx(700 * 3.0 / 1e6)
    assert sums[("model-b, output",)]["amount"] == pytest.approx(70 * 4.0 / 1e6)
    assert sums[("model-a, input",)]["quantity"] == 300
    assert sums[("mystery-model-xyz, input",)]["amount"] == 0
    flagged = [r for b in page["data"] for r in b["results"] if r["line_item"].startswith("mystery-model-xyz")]
    assert flagged and all(r["unpriced_models"] == ["mystery-model-xyz"] for r in flagged)
    for bucket in page["data"]:
        for result in bucket["results"]:
            assert result["amount"]["currency"] == "usd" and result["quantity_unit"] == "tokens"


def test_costs_total_and_by_key(admin, traffic) -> None:  # noqa: ANN001
    page = get(admin, "/organization/costs", start_time=traffic["start"])
    expected = (300 * 1.0 + 30 * 2.0 + 700 * 3.0 + 70 * 4.0) / 1e6
    assert totals(page)[()]["amount"] == pytest.approx(expected)
    page = get(admin, "/organization/costs", start_time=traffic["start"], group_by=["api_key_id", "project_id"])
    sums = totals(page, "api_key_id", "project_id")
    assert sums[(key_id(KEY_B), "proj_default")]["amount"] == pytest.approx((700 * 3.0 + 70 * 4.0) / 1e6)
    assert sums[(key_id(KEY_A), "proj_default")]["amount"] == pytest.approx((300 * 1.0 + 30 * 2.0) / 1e6)


def test_hidden_cost_per_run(admin, traffic) -> None:  # noqa: ANN001
    r1, r2, r3, _ = traffic["runs"]
    first = get(admin, f"/organization/usage/runs/{r1}")
    second = get(admin, f"/organization/usage/runs/{r2}")
    assert len(first["turns"]) == 1 and first["input_tokens"] == 100 and first["output_tokens"] == 10
    # The second run on the thread re-sends the first exchange: its history is larger.
    history = [r["prompt_tokens_by_source"]["history"] for r in (first, second)]
    assert 0 < history[0] < history[1]
    assert second["prompt_tokens_by_source"]["instructions"] > 0
    assert second["cost"]["input"] == pytest.approx(200 / 1e6)
    assert second["cost"]["history"] == pytest.approx(history[1] / 1e6)
    assert second["cost"]["total"] == pytest.approx((200 * 1.0 + 20 * 2.0) / 1e6)
    tools = get(admin, f"/organization/usage/runs/{r3}")
    assert [t["input_tokens"] for t in tools["turns"]] == [300, 400]
    assert tools["turns"][0]["prompt_tokens_by_source"]["tool_outputs"] == 0
    assert tools["turns"][1]["prompt_tokens_by_source"]["tool_outputs"] > 0  # the function's output, re-sent
    assert all(t["latency_ms"] is not None and t["latency_ms"] >= 0 for t in tools["turns"])
    assert tools["api_key_id"] == key_id(KEY_B) and tools["project_id"] == "proj_default"
    missing = admin.get("/organization/usage/runs/run_nope")
    assert missing.status_code == 404


def test_tool_endpoints_answer_empty_buckets(admin, traffic) -> None:  # noqa: ANN001
    for endpoint in ("embeddings", "code_interpreter_sessions", "vector_stores", "file_search_calls"):
        page = get(admin, f"/organization/usage/{endpoint}", start_time=traffic["start"], bucket_width="1h")
        assert page["data"] and all(b["results"] == [] for b in page["data"]), endpoint
