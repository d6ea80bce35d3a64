"""TEST DOUBLE: a scripted fake of the OpenAI Chat Completions API over real HTTP (see ``tests.fakes``).

Endpoints: ``POST /v1/chat/completions`` (streaming SSE and non-streaming), ``POST /v1/embeddings``
(deterministic unit vectors), ``GET /v1/models``.

Streams look like OpenAI's: a role chunk first, content deltas, tool calls split across chunks (first the
index, id, type and name with empty arguments, then argument fragments), a chunk carrying finish_reason, a
usage chunk with empty choices when ``stream_options.include_usage`` is true, then ``data: [DONE]``.

Command line (for benchmarks)::

    python -m tests.fakes.fake_openai --port 8911 --ttft-ms 200 --tokens-per-s 50 [--reply-tokens 64] [--echo]
"""

from __future__ import annotations

import array
import asyncio
import base64
import hashlib
import math
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from . import (
    DropConnection,
    FakeServer,
    Reply,
    cli_args,
    configure_from_cli,
    count_prompt_words,
    split_text,
    sse,
)

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error", 429: "requests"}


class FakeOpenAI(FakeServer):
    url_suffix = "/v1"

    def __init__(self, port: int = 0, **kwargs: Any) -> None:
        super().__init__(port, **kwargs)
        self.models = ["gpt-4o-mini", "fake-model"]
        self.reject_stream_options = False  # act like an old server that 400s on stream_options
        self.embedding_dimensions = 16

    def reset(self) -> None:
        super().reset()
        self.reject_stream_options = False

    def build_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        number = self.record(body, dict(request.headers))
        if self.reject_stream_options and "stream_options" in body:
            return JSONResponse(
                {
                    "error": {
                        "message": "Unrecognized request argument supplied: stream_options",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                },
                status_code=400,
            )
        reply = self.take_reply(body)
        if reply.error:
            return self._error(reply)
        plan = _Plan(self, body, reply, number)
        if not body.get("stream"):
            await self.pace(reply, first=True)
            return JSONResponse(plan.completion())
        return StreamingResponse(plan.chunks(request), media_type="text/event-stream")

    def _error(self, reply: Reply) -> Response:
        status = reply.error or 500
        error_type = reply.error_type or _ERROR_TYPES.get(
            status, "server_error" if status >= 500 else "invalid_request_error"
        )
        headers = {"retry-after": str(reply.retry_after)} if reply.retry_after is not None else None
        content = {"error": {"message": reply.message, "type": error_type, "param": None, "code": reply.error_code}}
        return JSONResponse(content, status_code=status, headers=headers)

    async def _embeddings(self, request: Request) -> Response:
        body = await request.json()
        inputs = body.get("input", [])
        if isinstance(inputs, str) or (inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        dims = int(body.get("dimensions") or self.embedding_dimensions)
        data = []
        for i, item in enumerate(inputs):
            vector = fake_embedding(item if isinstance(item, str) else " ".join(map(str, item)), dims)
            if body.get("encoding_format") == "base64":
                embedding: Any = base64.b64encode(array.array("f", vector).tobytes()).decode()
            else:
                embedding = vector
            data.append({"object": "embedding", "index": i, "embedding": embedding})
        tokens = sum(len(str(x).split()) for x in inputs)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body.get("model", "fake-embedding"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def _models(self, request: Request) -> Response:
        models = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
        return JSONResponse({"object": "list", "data": models})


def fake_embedding(text: str, dims: int) -> list[float]:
    """A deterministic unit vector derived from the text's sha256 (equal texts → equal vectors)."""
    values: list[float] = []
    counter = 0
    while len(values) < dims:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    values = values[:dims]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


class _Plan:
    """What one reply sends: text pieces, tool calls with argument fragments, finish reason, usage."""

    def __init__(self, fake: FakeOpenAI, body: dict, reply: Reply, number: int) -> None:
        self.fake = fake
        self.body = body
        self.reply = reply
        self.id = f"chatcmpl-fake{number:06d}"
        self.created = int(time.time())
        self.model = body.get("model", "fake-model")
        self.pieces = split_text(fake.reply_text(reply), reply.chunks)
        self.tool_calls = list(reply.tool_calls)
        self.finish = reply.finish_reason or ("tool_calls" if self.tool_calls else "stop")
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if limit and len(self.pieces) > limit:
            self.pieces = self.pieces[:limit]
            self.tool_calls = []
            self.finish = "length"
        self.call_ids = [
            (tc.id if tc.id is not None else f"call_fake{number:04d}x{i}") for i, tc in enumerate(self.tool_calls)
        ]
        fragments = sum(len(split_text(tc.arguments, tc.chunks)) for tc in self.tool_calls)
        self.prompt_tokens = reply.prompt_tokens if reply.prompt_tokens is not None else count_prompt_words(body)
        self.completion_tokens = (
            reply.completion_tokens if reply.completion_tokens is not None else len(self.pieces) + fragments
        )

    def usage(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    def completion(self) -> dict:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.pieces) or None, "refusal": None}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": cid, "type": "function", "function": {"name": tc.name, "arguments": tc.arguments}}
                for cid, tc in zip(self.call_ids, self.tool_calls, strict=True)
            ]
        out = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish}],
        }
        if self.reply.usage:
            out["usage"] = self.usage()
        return out

    def _chunk(self, delta: dict, finish: str | None = None) -> str:
        return sse(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": None,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
        )

    async def chunks(self, request: Request) -> AsyncIterator[str]:
        try:
            async for chunk in self._chunks(request):
                yield chunk
        except (asyncio.CancelledError, GeneratorExit):
            self.fake.abandoned += 1  # the client closed the stream before its end
            raise

    async def _first_token_wait(self, request: Request) -> bool:
        """Wait for the time to first token; False if the client went away meanwhile (nothing is written while
        waiting, so the server would not notice otherwise)."""
        delay = self.fake.ttft_s if self.reply.ttft_s is None else self.reply.ttft_s
        deadline = time.monotonic() + (delay or 0.0)
        while time.monotonic() < deadline:
            if await request.is_disconnected():
                return False
            await asyncio.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        return True

    async def _chunks(self, request: Request) -> AsyncIterator[str]:
        reply, fake = self.reply, self.fake
        if not await self._first_token_wait(request):
            fake.abandoned += 1
            return
        yield self._chunk({"role": "assistant", "content": "", "refusal": None})
        for n, piece in enumerate(self.pieces):
            if n:
                await fake.pace(reply, first=False)
            yield self._chunk({"content": piece})
            if reply.drop_after is not None and n + 1 >= reply.drop_after:
                raise DropConnection
        for i, (cid, tc) in enumerate(zip(self.call_ids, self.tool_calls, strict=True)):
            head: dict[str, Any] = {"index": i, "type": "function", "function": {"name": tc.name, "arguments": ""}}
            if cid:
                head["id"] = cid
            yield self._chunk({"tool_calls": [head]})
            for fragment in split_text(tc.arguments, tc.chunks):
                await fake.pace(reply, first=False)
                yield self._chunk({"tool_calls": [{"index": i, "function": {"arguments": fragment}}]})
        yield self._chunk({}, self.finish)
        options = self.body.get("stream_options") or {}
        if reply.usage and options.get("include_usage"):
            yield sse(
                {
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": self.usage(),
                }
            )
        yield sse("[DONE]")


def main() -> None:
    args = cli_args("Fake OpenAI Chat Completions server (test double).", 8911)
    fake = configure_from_cli(FakeOpenAI(args.port), args)
    fake.serve_forever()


if __name__ == "__main__":
    main()
