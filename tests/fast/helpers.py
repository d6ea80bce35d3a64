"""Helpers for the fast tier: polling a run and reading a buffered SSE body."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import openai

POLL_S = 0.01
TIMEOUT_S = 20.0  # generous: the machine is loaded; a passing test never waits this long


async def wait_status(
    client: openai.AsyncOpenAI, thread_id: str, run_id: str, statuses: set[str], timeout: float = TIMEOUT_S
) -> Any:
    """Poll the run until its status is in `statuses` (or the timeout passes); returns the last Run seen."""
    deadline = time.monotonic() + timeout
    while True:
        run = await client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
        if run.status in statuses or time.monotonic() > deadline:
            return run
        await asyncio.sleep(POLL_S)


async def wait_for(event: asyncio.Event, timeout: float = TIMEOUT_S) -> None:
    await asyncio.wait_for(event.wait(), timeout)


def sse_events(response: httpx.Response) -> list[tuple[str, Any]]:
    """(event name, parsed data) pairs of a finished SSE body; `done` carries "[DONE]"."""
    events: list[tuple[str, Any]] = []
    name = None
    for line in response.text.splitlines():
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: ") and name is not None:
            data = line[len("data: ") :]
            events.append((name, data if data == "[DONE]" else json.loads(data)))
            name = None
    return events


def collapse(names: list[str]) -> list[str]:
    """Runs of the same delta event collapsed to one."""
    out: list[str] = []
    for n in names:
        if not (out and out[-1] == n and n.endswith(".delta")):
            out.append(n)
    return out
