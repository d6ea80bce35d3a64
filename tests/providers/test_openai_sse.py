"""OpenAICompatProvider against hand-written HTTP responses: SSE framing, in-stream errors, URLs, connections.

A raw asyncio TCP server on 127.0.0.1 answers each request with a scripted list of byte pieces, sent as separate
HTTP chunks with a pause between them, so that lines really arrive split across network reads.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from threadline.providers.base import (
    ChatMessage,
    ChatRequest,
    Finish,
    ProviderError,
    RetryPolicy,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)
from threadline.providers.openai_compat import OpenAICompatProvider

FAST_RETRY = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02)


@dataclass
class Canned:
    """One HTTP response: status, headers and body pieces (each its own chunk, written after a pause)."""

    pieces: list[bytes] = field(default_factory=list)
    status: int = 200
    content_type: str = "text/event-stream"
    headers: dict[str, str] = field(default_factory=dict)
    hold_open: bool = False  # never finish the body


@dataclass
class Seen:
    request_line: str
    headers: dict[str, str]
    body: dict


class RawServer:
    def __init__(self, *responses: Canned) -> None:
        self.responses = list(responses)
        self.requests: list[Seen] = []
        self.connections = 0
        self.closed_connections = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:] if x)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append(Seen(lines[0], headers, json.loads(body)))
                canned = self.responses.pop(0)
                extra = "".join(f"{k}: {v}\r\n" for k, v in canned.headers.items())
                writer.write(
                    f"HTTP/1.1 {canned.status} X\r\ncontent-type: {canned.content_type}\r\n{extra}"
                    "transfer-encoding: chunked\r\n\r\n".encode()
                )
                for piece in canned.pieces:
                    writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    await writer.drain()
                    await asyncio.sleep(0.005)
                if canned.hold_open:
                    await asyncio.sleep(3600)
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed_connections += 1
        except asyncio.CancelledError:  # the test's loop is ending
            pass
        finally:
            writer.close()


def chunk(content: str | None = None, finish: str | None = None, **delta: object) -> dict:
    if content is not None:
        delta["content"] = content
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def sse(*payloads: object) -> list[bytes]:
    return [b"data: " + (p if isinstance(p, bytes) else json.dumps(p).encode()) + b"\n\n" for p in payloads]


def request() -> ChatRequest:
    return ChatRequest(model="gpt-4o", messages=[ChatMessage("user", "Hi")])


def run(
    responses: list[Canned], body: Callable[[RawServer, OpenAICompatProvider], Awaitable[object]], **kwargs: object
) -> tuple[RawServer, object]:
    async def go() -> tuple[RawServer, object]:
        async with RawServer(*responses) as server:
            kwargs.setdefault("retry", FAST_RETRY)
            kwargs.setdefault("base_url", server.base_url)
            p = OpenAICompatProvider(api_key="sk-raw", **kwargs)  # type: ignore[arg-type]
            try:
                return server, await body(server, p)
            finally:
                await p.aclose()

    return asyncio.run(go())


async def events_of(p: OpenAICompatProvider) -> list:
    return [e async for e in p.stream(request())]


def stream_events(responses: list[Canned], **kwargs: object) -> tuple[RawServer, list]:
    server, events = run(responses, lambda s, p: events_of(p), **kwargs)
    return server, events  # type: ignore[return-value]


def stream_error(responses: list[Canned], **kwargs: object) -> tuple[RawServer, list, ProviderError]:
    seen: list = []

    async def body(server: RawServer, p: OpenAICompatProvider) -> ProviderError:
        with pytest.raises(ProviderError) as info:
            async for event in p.stream(request()):
                seen.append(event)
        return info.value

    server, err = run(responses, body, **kwargs)
    return server, seen, err  # type: ignore[return-value]


def text_of(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def test_lines_split_across_reads_comments_and_crlf():
    whole = b"".join(sse(chunk("Hel"), chunk("lo, "), chunk("world", "stop")))
    whole = whole.replace(b"\n", b"\r\n")
    usage = {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}}
    pieces = [b": keep-alive\r\n\r\n", whole[:7], whole[7:30], whole[30:31], whole[31:], *sse(usage, b"[DONE]")]
    server, events = stream_events([Canned(pieces)])
    assert text_of(events) == "Hello, world"
    assert [type(e) for e in events[-2:]] == [Usage, Finish]
    assert events[-2] == Usage(5, 3) and events[-1] == Finish("stop")
    seen = server.requests[0]
    assert seen.request_line == "POST /v1/chat/completions HTTP/1.1"
    assert seen.headers["authorization"] == "Bearer sk-raw"
    assert seen.body["stream"] is True and seen.body["stream_options"] == {"include_usage": True}


def test_no_blank_lines_multiline_data_event_fields_and_no_done():
    first = json.dumps(chunk("one ")).encode()
    split = json.dumps(chunk("two"), indent=1).encode().split(b"\n")
    pieces = [
        b"id: 1\nretry: 100\nevent: message\ndata: " + first + b"\n",  # no blank line before the next event
        b"data:" + json.dumps(chunk(" three")).encode() + b"\n\n",  # no space after the colon
        b"".join(b"data: " + line + b"\n" for line in split) + b"\n",  # one JSON over several data lines
        b"data: \n\n",  # empty data is skipped
        b"data: " + json.dumps(chunk(None, "stop")).encode() + b"\n\n",
    ]  # the body ends without [DONE]
    _, events = stream_events([Canned(pieces)])
    assert text_of(events) == "one  threetwo"
    assert isinstance(events[-2], Usage) and events[-1] == Finish("stop")


def test_tool_call_chunks_over_raw_sse():
    head = {"index": 0, "id": "abc", "type": "function", "function": {"name": "f", "arguments": ""}}
    pieces = sse(
        chunk(role="assistant"),
        chunk(tool_calls=[head]),
        chunk(tool_calls=[{"index": 0, "function": {"arguments": '{"a":'}}]),
        chunk(tool_calls=[{"index": 0, "function": {"arguments": "1}"}}]),
        chunk(None, "tool_calls"),
        b"[DONE]",
    )
    _, events = stream_events([Canned(pieces)])
    assert events[0] == ToolCallStart(0, "call_abc", "f")
    assert "".join(e.arguments for e in events if isinstance(e, ToolCallDelta)) == '{"a":1}'
    assert events[-1] == Finish("tool_calls")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ({"message": "The server had an error", "type": "server_error"}, "server_error"),
        ({"message": "Slow down", "type": "requests", "code": "rate_limit_exceeded"}, "rate_limit_exceeded"),
        ("model overloaded", "server_error"),
    ],
)
def test_in_stream_error_before_output_is_retried(error, code):
    bad = Canned([b": ping\n\n", *sse({"error": error})])
    good = Canned(sse(chunk("ok", "stop"), b"[DONE]"))
    server, events = stream_events([bad, good])
    assert text_of(events) == "ok"
    assert len(server.requests) == 2

    _, seen, err = stream_error([bad] * 3)
    assert seen == []
    assert err.code == code
    assert err.message == (error if isinstance(error, str) else error["message"])


def test_in_stream_error_after_output_is_not_retried():
    pieces = sse(chunk("partial"), {"error": {"message": "context window exceeded", "code": "context_length_exceeded"}})
    server, seen, err = stream_error([Canned(pieces), Canned(sse(chunk("never")))])
    assert text_of(seen) == "partial"
    assert err.code == "invalid_prompt" and err.message == "context window exceeded"
    assert len(server.requests) == 1


def test_error_event_and_malformed_data():
    pieces = [b"event: error\ndata: " + json.dumps({"message": "boom"}).encode() + b"\n\n"]
    _, _, err = stream_error([Canned(pieces)] * 3)
    assert err.code == "server_error" and err.message == "boom"

    server, _, err = stream_error([Canned([b"data: {not json\n\n"])] * 3)
    assert err.code == "server_error" and "malformed" in err.message
    assert len(server.requests) == 1  # not retried: the same server would send the same thing


def test_status_errors_plain_text_and_quota():
    server, _, err = stream_error([Canned([], status=503, content_type="text/plain")] * 3)
    assert err.code == "server_error" and err.message == "Error code: 503"
    server, _, err = stream_error([Canned([b"Bad gateway"], status=502, content_type="text/plain")] * 3)
    assert err.code == "server_error" and err.message == "Bad gateway"
    assert len(server.requests) == 3

    quota = {"error": {"message": "You exceeded your current quota", "type": "insufficient_quota"}}
    quota["error"]["code"] = "insufficient_quota"
    server, _, err = stream_error([Canned([json.dumps(quota).encode()], status=429, content_type="application/json")])
    assert err.code == "rate_limit_exceeded" and not err.retryable
    assert err.message == "You exceeded your current quota"
    assert len(server.requests) == 1


def test_stream_options_rejected_with_422_detail():
    reject = Canned([b'{"detail": "extra field: stream_options"}'], status=422, content_type="application/json")
    server, events = stream_events([reject, Canned(sse(chunk("fine", "stop"), b"[DONE]"))])
    assert text_of(events) == "fine"
    assert ["stream_options" in r.body for r in server.requests] == [True, False]


def test_html_page_is_an_error_not_an_empty_reply():
    page = Canned([b"<!doctype html><html><body>app</body></html>"], content_type="text/html")
    _, _, err = stream_error([page] * 3)
    assert err.code == "server_error" and "sent no stream events (text/html)" in err.message


def test_json_completion_when_stream_is_ignored():
    message = {
        "role": "assistant",
        "content": "Sure.",
        "tool_calls": [
            {"id": "x1", "type": "function", "function": {"name": "a", "arguments": "{}"}},
            {"type": "function", "function": {"name": "b", "arguments": '{"k":2}'}},
        ],
    }
    completion = {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 9},
    }
    _, events = stream_events([Canned([json.dumps(completion).encode()], content_type="application/json")])
    assert text_of(events) == "Sure."
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    assert [(s.index, s.name) for s in starts] == [(0, "a"), (1, "b")] and starts[0].id == "call_x1"
    assert ToolCallDelta(1, '{"k":2}') in events
    assert events[-2:] == [Usage(7, 9), Finish("tool_calls")]


def test_azure_style_base_url_with_query_and_headers():
    async def body(server: RawServer, p: OpenAICompatProvider) -> list:
        return await events_of(p)

    async def go() -> RawServer:
        async with RawServer(Canned(sse(chunk("hi", "stop"), b"[DONE]"))) as server:
            base = server.base_url.replace("/v1", "/openai/deployments/gpt4o/") + "?api-version=2024-10-21"
            p = OpenAICompatProvider(
                api_key="azure-key",
                base_url=base,
                default_headers={"api-key": "azure-key", "user-agent": "custom-agent/1"},
            )
            assert text_of(await events_of(p)) == "hi"
            await p.aclose()
            return server

    seen = asyncio.run(go()).requests[0]
    assert seen.request_line == ("POST /openai/deployments/gpt4o/chat/completions?api-version=2024-10-21 HTTP/1.1")
    assert seen.headers["api-key"] == "azure-key" and seen.headers["user-agent"] == "custom-agent/1"
    assert seen.headers["authorization"] == "Bearer azure-key"


def test_connections_are_kept_alive_and_closed_by_aclose():
    replies = [Canned(sse(chunk(f"n{i}", "stop"), b"[DONE]")) for i in range(3)]

    async def go() -> tuple[RawServer, list[str]]:
        async with RawServer(*replies) as server:
            p = OpenAICompatProvider(api_key="k", base_url=server.base_url)
            texts = [text_of(await events_of(p)) for _ in range(3)]
            assert server.closed_connections == 0
            await p.aclose()
            for _ in range(100):  # the server notices the close
                if server.closed_connections:
                    break
                await asyncio.sleep(0.01)
            return server, texts

    server, texts = asyncio.run(go())
    assert texts == ["n0", "n1", "n2"]
    assert server.connections == 1  # one pooled keep-alive connection for all three streams
    assert server.closed_connections == 1


def test_stream_held_open_after_done_still_finishes():
    held = Canned(sse(chunk("done", "stop"), b"[DONE]"), hold_open=True)

    async def go() -> tuple[list, float]:
        async with RawServer(held) as server:
            p = OpenAICompatProvider(api_key="k", base_url=server.base_url)
            started = asyncio.get_running_loop().time()
            events = await events_of(p)
            elapsed = asyncio.get_running_loop().time() - started
            await p.aclose()
            return events, elapsed

    events, elapsed = asyncio.run(go())
    assert text_of(events) == "done" and events[-1] == Finish("stop")
    assert elapsed < 3.0
