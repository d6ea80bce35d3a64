"""Limits on the runtime's clock (in-process, ManualClock): spend is the clock's calendar month (UTC), so a spend
limit reached in one month lets runs through in the next and an alert fires once per month; the request rate
limit's window slides with the clock."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from threadline.clock import ManualClock
from threadline.config import Settings
from threadline.store import limits as records

from .scripted import Turn

pytestmark = pytest.mark.anyio
PROJECT = "/organization/projects/proj_default"


@pytest.fixture
def clock() -> ManualClock:
    """The 11th of the month two months back (runs expire on the wall clock: this clock stays behind it, even
    after moving a month on)."""
    now = datetime.now(UTC)
    year, month = (now.year, now.month - 2) if now.month > 2 else (now.year - 1, now.month + 10)
    return ManualClock(start=int(datetime(year, month, 11, tzinfo=UTC).timestamp()))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"dear": {"input_per_mtok": 10000.0, "output_per_mtok": 0.0}}}))
    return Settings(
        data_dir=tmp_path / "data", run_workers=4, sandbox_warm_pool=0, storage_reserve_mb=0, prices_file=prices
    )


def next_month(clock: ManualClock) -> None:
    day = datetime.fromtimestamp(clock.now(), UTC)
    first = datetime(day.year + day.month // 12, day.month % 12 + 1, 1, 12, tzinfo=UTC)
    clock.advance(first.timestamp() - clock.time())


async def a_run(client, assistant_id: str):  # noqa: ANN001, ANN201
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    return await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant_id, poll_interval_ms=10
    )


async def firings(runtime, alert_id: str, count: int) -> list[dict]:  # noqa: ANN001
    """The alert's firings, once there are `count` (alerts are evaluated in the background)."""
    for _ in range(200):
        with runtime.store.read() as conn:
            found = records.firings(conn, alert_id)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.02)
    return found


async def test_spend_limit_and_alerts_follow_the_clocks_month(client, http, llm, runtime, clock) -> None:  # noqa: ANN001
    assistant = await client.beta.assistants.create(model="dear")
    alert = (
        await http.post(
            f"{PROJECT}/spend_alerts",
            json={
                "threshold_amount": 100,
                "currency": "USD",
                "interval": "month",
                "notification_channel": {"type": "email", "recipients": []},
            },
        )
    ).json()
    limit = {"threshold_amount": 150, "currency": "USD", "interval": "month"}
    assert (await http.post(f"{PROJECT}/spend_limit", json=limit)).status_code == 200
    first_month = datetime.fromtimestamp(clock.now(), UTC).strftime("%Y-%m")
    for _ in range(2):  # 100 input tokens: 100 cents each
        llm.script(Turn(text="ok", usage=(100, 0)))
        assert (await a_run(client, assistant.id)).status == "completed"
    fired = await firings(runtime, alert["id"], 1)
    assert [f["period"] for f in fired] == [first_month] and fired[0]["spend_amount"] >= 100
    calls = len(llm.requests)
    failed = await a_run(client, assistant.id)  # 200 cents spent of 150
    assert failed.status == "failed" and failed.last_error.code == "rate_limit_exceeded"
    assert "$2.00 spent this month (UTC) of its $1.50 hard spend limit" in failed.last_error.message
    assert len(llm.requests) == calls  # the model was not called
    next_month(clock)
    second_month = datetime.fromtimestamp(clock.now(), UTC).strftime("%Y-%m")
    llm.script(Turn(text="ok", usage=(100, 0)))
    assert (await a_run(client, assistant.id)).status == "completed"  # a new month: nothing spent yet
    fired = await firings(runtime, alert["id"], 2)
    assert [f["period"] for f in fired] == [first_month, second_month]


async def test_request_rate_limit_slides_with_the_clock(client, http, llm, clock) -> None:  # noqa: ANN001
    assistant = await client.beta.assistants.create(model="dear")
    rpm = {"max_requests_per_1_minute": 2}
    assert (await http.post(f"{PROJECT}/rate_limits/rl-dear", json=rpm)).status_code == 200
    clock.advance(60 - clock.time() % 60 + 30)  # half way through a minute
    llm.script(Turn(text="a", usage=(1, 1)), Turn(text="b", usage=(1, 1)))
    run = await a_run(client, assistant.id)
    assert (await a_run(client, assistant.id)).status == "completed"
    refused = await http.post(f"/threads/{run.thread_id}/runs", json={"assistant_id": assistant.id})
    assert refused.status_code == 429
    # Both calls were made at :30; one more fits once the sliding window holds at most 1 of them: in the next
    # minute they weigh 2 x (60 - s) / 60, which is 1 at :30, i.e. 60 s later (at :29, 2 x 31/60 > 1).
    wait = int(refused.headers["retry-after"])
    assert wait == 60
    clock.advance(wait - 1)
    assert (await http.post(f"/threads/{run.thread_id}/runs", json={"assistant_id": assistant.id})).status_code == 429
    clock.advance(1)
    llm.script(Turn(text="c", usage=(1, 1)))
    assert (await http.post(f"/threads/{run.thread_id}/runs", json={"assistant_id": assistant.id})).status_code == 200
