"""Reading raw Server-Sent Events from the server and checking each payload against the OpenAPI spec."""

from __future__ import annotations

import json
from typing import Any

import httpx

from support.schemas import validate

EVENT_SCHEMAS = {
    "thread.created": "ThreadObject",
    "thread.run.step.delta": "RunStepDeltaObject",
    "thread.message.delta": "MessageDeltaObject",
}


def schema_for(event: str) -> str | None:
    if event in EVENT_SCHEMAS:
        return EVENT_SCHEMAS[event]
    if event.startswith("thread.run.step."):
        return "RunStepObject"
    if event.startswith("thread.message."):
        return "MessageObject"
    if event.startswith("thread.run."):
        return "RunObject"
    return None


def parse(lines: list[str]) -> list[tuple[str, Any]]:
    events: list[tuple[str, Any]] = []
    name, data = None, []
    for line in lines:
        if line.startswith(":"):
            continue
        if line == "":
            if name is not None:
                payload = "\n".join(data)
                events.append((name, payload if payload == "[DONE]" else json.loads(payload)))
            name, data = None, []
        elif line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
    return events


def post_stream(base_url: str, path: str, body: dict, params: dict | None = None) -> list[tuple[str, Any]]:
    """POST with stream=true, read the whole stream, validate every payload, return (event, data) pairs."""
    headers = {"Authorization": "Bearer test", "OpenAI-Beta": "assistants=v2"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as c:
        with c.stream("POST", path, json={**body, "stream": True}, params=params) as response:
            assert response.status_code == 200, response.read()
            assert response.headers["content-type"].startswith("text/event-stream")
            events = parse(list(response.iter_lines()))
    for name, data in events:
        schema = schema_for(name)
        if schema:
            validate(schema, data)
    return events


def names(events: list[tuple[str, Any]]) -> list[str]:
    return [n for n, _ in events]


def collapse(seq: list[str]) -> list[str]:
    """Collapse runs of repeated delta events into one, so orders can be compared to the contract."""
    out: list[str] = []
    for name in seq:
        if name.endswith(".delta") and out and out[-1] == name:
            continue
        out.append(name)
    return out
