"""TEST DOUBLE: an in-memory ChatProvider that plays scripted turns (the fast tier's model).

The end-to-end tier keeps the HTTP fake LLM (tests/fakes); this one implements providers/base.py's ChatProvider
protocol directly, so the engine is exercised without sockets::

    llm = ScriptedProvider()
    llm.script(Turn(tool_calls=[Call("get_weather", '{"city":"Paris"}')]), Turn(text="It is sunny."))
    app = create_app(settings, providers=ProviderRouter.single(llm))
    ...
    llm.requests[-1].messages        # the ChatRequest the engine sent

A turn without script answers DEFAULT_TEXT. Like a model, a turn stops at the request's max_tokens (counted in
words) with finish reason "length". A `hold` turn streams `hold` chunks and then waits until
`llm.release()` (or the stream is closed): a run is kept in progress for as long as a test needs, without sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from threadline.providers.base import (
    ChatEvent,
    ChatRequest,
    Finish,
    ProviderError,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)

DEFAULT_TEXT = "Hello from the scripted model."


@dataclass
class Call:
    name: str
    arguments: str = "{}"
    id: str | None = None  # default call_<n>
    chunks: int = 2  # argument fragments


@dataclass
class Turn:
    text: str | None = None  # None and no tool_calls → DEFAULT_TEXT
    chunks: int | None = None  # text split into this many deltas; None → one per word
    tool_calls: list[Call] = field(default_factory=list)
    usage: tuple[int, int] | None = None  # (prompt, completion); None → counted from words
    finish: str | None = None  # None → "tool_calls" with calls, else "stop"
    error: ProviderError | None = None  # raised after `error_after` text deltas
    error_after: int = 0
    hold: int | None = None  # after this many text deltas, wait for release()


def _split(text: str, chunks: int | None) -> list[str]:
    if chunks is None:
        words = text.split(" ")
        return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
    size = max(1, -(-len(text) // max(1, chunks)))
    return [text[i : i + size] for i in range(0, len(text), size)]


class ScriptedProvider:
    """ChatProvider over a list of scripted turns; records every request in `requests`."""

    name = "scripted"

    def __init__(self, *, vision: bool = True) -> None:
        self.turns: list[Turn] = []
        self.requests: list[ChatRequest] = []
        self.vision = vision
        self._released = asyncio.Event()
        self.holding = asyncio.Event()  # set while a `hold` turn is waiting
        self._calls = 0

    def script(self, *turns: Turn) -> None:
        self.turns.extend(turns)

    def release(self) -> None:
        self._released.set()

    def supports_images(self, model: str) -> bool:
        return self.vision

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatEvent]:
        self.requests.append(request)
        turn = self.turns.pop(0) if self.turns else Turn()
        return self._play(turn)

    async def _play(self, turn: Turn) -> AsyncIterator[ChatEvent]:
        if turn.error is not None and turn.error_after == 0:
            raise turn.error
        text = turn.text if turn.text is not None or turn.tool_calls else DEFAULT_TEXT
        finish = turn.finish
        limit = self.requests[-1].max_tokens
        if limit is not None and text and len(text.split()) > limit:  # like a model: stop at max_tokens (words)
            text, finish = " ".join(text.split()[:limit]), "length"
        deltas = _split(text, turn.chunks) if text else []
        for i, piece in enumerate(deltas):
            if turn.hold is not None and i == turn.hold:
                self.holding.set()
                await self._released.wait()
                self._released.clear()
                self.holding.clear()
            if turn.error is not None and i == turn.error_after:
                raise turn.error
            yield TextDelta(piece)
            await asyncio.sleep(0)  # let the engine interleave (cancel, expiry checks)
        if turn.error is not None and turn.error_after >= len(deltas):
            raise turn.error
        for index, call in enumerate(turn.tool_calls):
            self._calls += 1
            yield ToolCallStart(index, call.id or f"call_scripted{self._calls}", call.name)
            args = _split(call.arguments, call.chunks) if call.arguments else [""]
            for piece in args:
                yield ToolCallDelta(index, piece)
        prompt = sum(len(str(m.content or "").split()) for m in self.requests[-1].messages)
        completion = len(text.split()) if text else len(turn.tool_calls)
        yield Usage(*(turn.usage or (prompt, completion)))
        yield Finish(finish or ("tool_calls" if turn.tool_calls else "stop"))  # type: ignore[arg-type]
