"""Stream events: a per-request sink the executor writes to, and its Server-Sent Events encoding."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson

DONE = b"event: done\ndata: [DONE]\n\n"
KEEPALIVE = b": keep-alive\n\n"


def encode(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def error_payload(message: str, type_: str = "server_error", code: str | None = "server_error") -> dict[str, Any]:
    # The Python SDK raises only when `data` has an "error" key; the spec's bare Error shape is mirrored at the top.
    err = {"message": message, "type": type_, "param": None, "code": code}
    return {"error": err, **err}


class EventSink:
    """Events of one run for one HTTP response. Encoded when emitted, so later mutations don't leak in; never
    blocks the executor, and is simply dropped if the client went away."""

    def __init__(self, done: bytes = DONE) -> None:
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.attached = True
        self.done = done  # the stream's last bytes (Responses streams end with a bare `data: [DONE]`)

    def emit(self, event: str, data: Any) -> None:
        if self.attached:
            self._queue.put_nowait(encode(event, data))

    def close(self) -> None:
        if self.attached:
            self._queue.put_nowait(None)

    async def sse(self, keepalive_s: float = 15.0) -> AsyncIterator[bytes]:
        try:
            while True:
                try:
                    item = await asyncio.wait_for(self._queue.get(), keepalive_s)
                except TimeoutError:
                    yield KEEPALIVE
                    continue
                if item is None:
                    yield self.done
                    return
                yield item
        finally:
            self.attached = False


class NullSink:
    attached = False

    def emit(self, event: str, data: Any) -> None:
        pass

    def close(self) -> None:
        pass
