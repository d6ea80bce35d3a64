"""Usage rows on the runtime's clock (in-process, ManualClock): turns land in the minute, hour and day buckets
their clock time says; a cancelled run still records its interrupted model call (estimated); the daily vector
store size snapshot is taken once per clock day."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa

from threadline.clock import ManualClock
from threadline.store import schema

from .scripted import Turn

pytestmark = pytest.mark.anyio


async def _usage(http, **params) -> dict:  # noqa: ANN001
    response = await http.get("/organization/usage/completions", params=params)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def clock() -> ManualClock:
    """5 s into the current minute (runs expire on the wall clock: this one never runs ahead of it by much)."""
    wall = int(time.time())
    return ManualClock(start=wall - wall % 60 + 5 - (60 if wall % 60 < 5 else 0))


async def test_turns_fall_in_their_clock_buckets(client, http, llm, clock) -> None:  # noqa: ANN001
    minute0 = clock.now() - 5
    assistant = await client.beta.assistants.create(model="gpt-4o-mini", instructions="x")
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    llm.script(Turn(text="a", usage=(10, 1)))
    run = await client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed"
    clock.advance(60)  # the next minute
    llm.script(Turn(text="b", usage=(20, 2)))
    run = await client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed"
    page = await _usage(http, start_time=minute0 - 60, bucket_width="1m", end_time=minute0 + 120)
    assert [b["start_time"] for b in page["data"]] == [minute0 - 60, minute0, minute0 + 60]
    assert [[r["input_tokens"] for r in b["results"]] for b in page["data"]] == [[], [10], [20]]
    assert page["data"][1]["results"][0]["num_model_requests"] == 1
    page = await _usage(http, start_time=minute0, bucket_width="1m", end_time=minute0 + 120, limit=1)
    assert page["has_more"] is True and [r["input_tokens"] for r in page["data"][0]["results"]] == [10]
    page = await _usage(http, start_time=minute0, bucket_width="1m", end_time=minute0 + 120, page=page["next_page"])
    assert page["has_more"] is False and [r["input_tokens"] for r in page["data"][0]["results"]] == [20]
    # gpt-4o-mini is in genai-prices: $0.15 / $0.60 per million tokens.
    costs = (await http.get("/organization/costs", params={"start_time": minute0 - 86400})).json()
    amount = sum(r["amount"]["value"] for b in costs["data"] for r in b["results"])
    assert amount == pytest.approx((30 * 0.15 + 3 * 0.60) / 1e6)


async def test_cancelled_run_records_its_interrupted_call(client, http, llm, runtime) -> None:  # noqa: ANN001
    assistant = await client.beta.assistants.create(model="gpt-4o-mini")
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "a long question"}])
    llm.script(Turn(text="one two three four five six", hold=2))
    run = await client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    await asyncio.wait_for(llm.holding.wait(), 10)
    await client.beta.threads.runs.cancel(thread_id=thread.id, run_id=run.id)
    llm.release()
    for _ in range(200):
        run = await client.beta.threads.runs.retrieve(thread_id=thread.id, run_id=run.id)
        if run.status == "cancelled":
            break
        await asyncio.sleep(0.02)
    assert run.status == "cancelled"
    detail = (await http.get(f"/organization/usage/runs/{run.id}")).json()
    assert len(detail["turns"]) == 1 and detail["turns"][0]["estimated"] is True
    assert detail["turns"][0]["input_tokens"] > 0  # the prompt as counted when it was built
    assert detail["turns"][0]["input_tokens"] == sum(detail["prompt_tokens_by_source"].values())


async def test_vector_store_size_once_per_clock_day(client, http, runtime, clock) -> None:  # noqa: ANN001
    store = await client.vector_stores.create(name="s")
    snaps = runtime.vector_store_snapshots
    assert snaps.maybe_take(runtime.store, clock.now()) == 1
    assert snaps.maybe_take(runtime.store, clock.now()) == 0  # taken moments ago
    clock.advance(snaps.interval_s)
    assert snaps.maybe_take(runtime.store, clock.now()) == 0  # the same day, the same size: nothing to write
    clock.advance(86400)
    assert snaps.maybe_take(runtime.store, clock.now()) == 1
    with runtime.store.read() as conn:
        t = schema.usage_records
        rows = conn.execute(sa.select(t.c.vector_store_id).where(t.c.kind == "vector_store_bytes")).all()
    assert [r[0] for r in rows] == [store.id, store.id]
    page = (
        await http.get(
            "/organization/usage/vector_stores", params={"start_time": clock.now() - 2 * 86400, "bucket_width": "1d"}
        )
    ).json()
    assert sum(len(b["results"]) for b in page["data"]) == 2


async def test_a_call_reported_as_zero_tokens_is_estimated(client, http, llm) -> None:  # noqa: ANN001
    assistant = await client.beta.assistants.create(model="gpt-4o-mini", instructions="Be brief.")
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "hello there"}])
    llm.script(Turn(text="Four words in reply", usage=(0, 0)))
    run = await client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed"
    turn = (await http.get(f"/organization/usage/runs/{run.id}")).json()["turns"][0]
    assert turn["estimated"] is True
    assert turn["input_tokens"] == sum(turn["prompt_tokens_by_source"].values()) > 0
    assert turn["output_tokens"] == 4  # "Four words in reply" in o200k_base
