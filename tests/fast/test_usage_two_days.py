"""Tool prices over two days of the runtime's clock (in-process, ManualClock): a vector store is priced per
GB-day for each day it is kept, and code-interpreter sessions per session (one per thread per hour of use), each
day in its own cost bucket, at the price file's tool prices."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from threadline.clock import ManualClock
from threadline.config import Settings

from .scripted import Call, Turn

pytestmark = pytest.mark.anyio


TOOL_PRICES = {"code_interpreter_session": 0.05, "vector_store_gb_day": 2.0, "file_search_call": 0.01}


@pytest.fixture
def clock() -> ManualClock:
    """1000 s into the day before yesterday: runs expire on the wall clock, so the clock never runs ahead of it
    (two days later it is still behind the wall)."""
    wall = int(time.time())
    return ManualClock(start=wall - wall % 86400 - 2 * 86400 + 1000)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The app prices the tools from a price file."""
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"tools": TOOL_PRICES}))
    return Settings(
        data_dir=tmp_path / "data", run_workers=4, sandbox_warm_pool=0, storage_reserve_mb=0, prices_file=prices
    )


async def _costs(http, start: int) -> dict[int, dict[str, dict]]:  # noqa: ANN001
    """{day start: {line item: result}} of /v1/organization/costs from `start`."""
    response = await http.get("/organization/costs", params={"start_time": start, "group_by": ["line_item"]})
    assert response.status_code == 200, response.text
    return {b["start_time"]: {r["line_item"]: r for r in b["results"]} for b in response.json()["data"]}


async def test_vector_store_priced_per_gb_day_over_two_days(client, http, runtime, clock) -> None:  # noqa: ANN001
    day0 = clock.now() - clock.now() % 86400
    store = await client.vector_stores.create(name="kb")
    upload = await client.files.create(file=("notes.txt", b"Zebras have stripes. " * 40), purpose="assistants")
    attached = await client.vector_stores.files.create_and_poll(vector_store_id=store.id, file_id=upload.id)
    assert attached.status == "completed"
    size = (await client.vector_stores.retrieve(store.id)).usage_bytes
    assert size > 0
    snaps = runtime.vector_store_snapshots
    assert snaps.maybe_take(runtime.store, clock.now()) == 1
    clock.advance(86400)  # the next day: the store is counted again
    assert snaps.maybe_take(runtime.store, clock.now()) == 1
    usage = await http.get("/organization/usage/vector_stores", params={"start_time": day0, "bucket_width": "1d"})
    assert [[r["usage_bytes"] for r in b["results"]] for b in usage.json()["data"]] == [[size], [size]]
    costs = await _costs(http, day0)
    for day in (day0, day0 + 86400):
        item = costs[day]["vector store storage"]
        assert item["quantity"] == pytest.approx(size / 1e9) and item["quantity_unit"] == "gigabyte_days"
        assert item["amount"]["value"] == pytest.approx(size / 1e9 * TOOL_PRICES["vector_store_gb_day"])


async def test_code_interpreter_sessions_over_two_days(client, http, llm, clock) -> None:  # noqa: ANN001
    day0 = clock.now() - clock.now() % 86400
    analyst = await client.beta.assistants.create(model="m", tools=[{"type": "code_interpreter"}])
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "Compute."}])

    async def compute() -> None:
        llm.script(Turn(tool_calls=[Call("code_interpreter", '{"code": "print(6 * 7)"}')]), Turn(text="42"))
        run = await client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=analyst.id)
        assert run.status == "completed", run.last_error

    await compute()
    clock.advance(1800)  # within the hour: the same session
    await compute()
    clock.advance(86400)  # the next day: a new session
    await compute()
    usage = await http.get("/organization/usage/code_interpreter_sessions", params={"start_time": day0})
    sessions = {b["start_time"]: sum(r["num_sessions"] for r in b["results"]) for b in usage.json()["data"]}
    assert sessions == {day0: 1, day0 + 86400: 1}
    costs = await _costs(http, day0)
    for day in (day0, day0 + 86400):
        item = costs[day]["code interpreter sessions"]
        assert item["quantity"] == 1 and item["amount"]["value"] == pytest.approx(
            TOOL_PRICES["code_interpreter_session"]
        )
