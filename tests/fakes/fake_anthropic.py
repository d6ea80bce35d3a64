"""TEST DOUBLE: a scripted fake of the Anthropic Messages API over real HTTP (see ``tests.fakes``).

Endpoint: ``POST /v1/messages`` (streaming and non-streaming). Point the SDK at ``fake.base_url`` (no /v1).
The stream follows Anthropic's event protocol: message_start, ping, for each block content_block_start /
content_block_delta (text_delta or input_json_delta) / content_block_stop, then message_delta with the
stop_reason and output usage, then message_stop. Replies use OpenAI finish-reason names; they are mapped
(stop → end_turn, length → max_tokens, tool_calls → tool_use).

Command line::

    python -m tests.fakes.fake_anthropic --port 8912 --ttft-ms 200 --tokens-per-s 50
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from . import DropConnection, FakeServer, Reply, cli_args, configure_from_cli, count_prompt_words, split_text, sse

_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


class FakeAnthropic(FakeServer):
    url_suffix = ""

    def __init__(self, port: int = 0, **kwargs: Any) -> None:
        super().__init__(port, **kwargs)
        self.models = ["claude-sonnet-4-5", "claude-haiku-4-5"]

    def build_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )

    async def _models(self, request: Request) -> Response:
        if not request.headers.get("x-api-key") or not request.headers.get("anthropic-version"):
            err = {"type": "authentication_error", "message": "x-api-key and anthropic-version are required"}
            return JSONResponse({"type": "error", "error": err}, status_code=401)
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2025-09-29T00:00:00Z"} for m in self.models
        ]
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        return JSONResponse({"data": data, "has_more": False, "first_id": first, "last_id": last})

    async def _messages(self, request: Request) -> Response:
        body = await request.json()
        number, reply = self.next_reply(body, dict(request.headers))
        if reply.error:
            status = reply.error
            error_type = reply.error_type or _ERROR_TYPES.get(status, "api_error")
            headers = {"retry-after": str(reply.retry_after)} if reply.retry_after is not None else None
            content = {"type": "error", "error": {"type": error_type, "message": reply.message}}
            return JSONResponse(content, status_code=status, headers=headers)
        plan = _Plan(self, body, reply, number)
        if not body.get("stream"):
            await self.pace(reply, first=True)
            return JSONResponse(plan.message())
        return StreamingResponse(plan.events(), media_type="text/event-stream")


class _Plan:
    def __init__(self, fake: FakeAnthropic, body: dict, reply: Reply, number: int) -> None:
        self.fake = fake
        self.reply = reply
        self.id = f"msg_fake{number:06d}"
        self.model = body.get("model", "claude-fake")
        self.pieces = split_text(fake.reply_text(reply), reply.chunks)
        self.tool_calls = list(reply.tool_calls)
        finish = reply.finish_reason or ("tool_calls" if self.tool_calls else "stop")
        limit = body.get("max_tokens")
        if limit and len(self.pieces) > limit:
            self.pieces, self.tool_calls, finish = self.pieces[:limit], [], "length"
        self.stop_reason = _STOP.get(finish, finish)
        self.ids = [
            tc.id if tc.id is not None else f"toolu_fake{number:04d}x{i}" for i, tc in enumerate(self.tool_calls)
        ]
        fragments = sum(len(split_text(tc.arguments, tc.chunks)) for tc in self.tool_calls)
        self.input_tokens = reply.prompt_tokens if reply.prompt_tokens is not None else count_prompt_words(body)
        self.output_tokens = (
            reply.completion_tokens if reply.completion_tokens is not None else len(self.pieces) + fragments
        )

    def _content(self) -> list[dict]:
        content: list[dict] = []
        if self.pieces:
            content.append({"type": "text", "text": "".join(self.pieces)})
        for tid, tc in zip(self.ids, self.tool_calls, strict=True):
            content.append({"type": "tool_use", "id": tid, "name": tc.name, "input": json.loads(tc.arguments or "{}")})
        return content

    def message(self) -> dict:
        out: dict[str, Any] = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": self._content(),
            "stop_reason": self.stop_reason,
            "stop_sequence": None,
        }
        if self.reply.usage:
            out["usage"] = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
        return out

    async def events(self) -> AsyncIterator[str]:
        reply, fake = self.reply, self.fake
        start: dict[str, Any] = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
        }
        if reply.usage:
            start["usage"] = {"input_tokens": self.input_tokens, "output_tokens": 1}
        await fake.pace(reply, first=True)
        yield sse({"type": "message_start", "message": start}, "message_start")
        yield sse({"type": "ping"}, "ping")
        index = 0
        if self.pieces:
            block = {"type": "text", "text": ""}
            yield sse({"type": "content_block_start", "index": 0, "content_block": block}, "content_block_start")
            for n, piece in enumerate(self.pieces):
                if n:
                    await fake.pace(reply, first=False)
                delta = {"type": "text_delta", "text": piece}
                yield sse({"type": "content_block_delta", "index": 0, "delta": delta}, "content_block_delta")
                if reply.drop_after is not None and n + 1 >= reply.drop_after:
                    raise DropConnection
            yield sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
            index = 1
        for tid, tc in zip(self.ids, self.tool_calls, strict=True):
            block = {"type": "tool_use", "id": tid, "name": tc.name, "input": {}}
            yield sse({"type": "content_block_start", "index": index, "content_block": block}, "content_block_start")
            for fragment in ["", *split_text(tc.arguments, tc.chunks)]:
                await fake.pace(reply, first=False)
                delta = {"type": "input_json_delta", "partial_json": fragment}
                yield sse({"type": "content_block_delta", "index": index, "delta": delta}, "content_block_delta")
            yield sse({"type": "content_block_stop", "index": index}, "content_block_stop")
            index += 1
        message_delta: dict[str, Any] = {
            "type": "message_delta",
            "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
        }
        if reply.usage:
            message_delta["usage"] = {"output_tokens": self.output_tokens}
        yield sse(message_delta, "message_delta")
        yield sse({"type": "message_stop"}, "message_stop")


def main() -> None:
    args = cli_args("Fake Anthropic Messages server (test double).", 8912)
    fake = configure_from_cli(FakeAnthropic(args.port), args)
    fake.serve_forever()


if __name__ == "__main__":
    main()
