"""TEST DOUBLES: scripted fake LLM servers speaking real HTTP on 127.0.0.1.

``FakeOpenAI`` (Chat Completions) and ``FakeAnthropic`` (Messages) are used by the test suite and the
benchmarks instead of real model providers. They are never imported by ``src/``.

Scripting, shared by both fakes::

    with FakeOpenAI() as fake:                      # starts on a free port in a background thread
        fake.script(Reply(text="Hello", chunks=3),   # replies are consumed in order, one per request
                    Reply(tool_calls=[ToolCallSpec("get_weather", '{"city":"Paris"}')]),
                    Reply(error=429, retry_after=0))
        fake.responder = echo_responder             # used when the script is empty
        ... point a client at fake.base_url ...
        fake.requests                               # every chat request body received, in order
        fake.request_headers                        # ... and its headers
        fake.abandoned                              # streams the client closed early (FakeOpenAI)
        fake.reset()                                # clear script, records and responder

With neither a script nor a responder, a fake answers with a short deterministic text. Each text chunk and
each argument fragment counts as one completion token; ``tokens_per_s`` paces chunks, ``ttft_s`` delays the
first one. A request's ``max_tokens`` (or ``max_completion_tokens``) truncates the text and reports
finish_reason "length" / stop_reason "max_tokens".
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TEXT = "Hello! This is a deterministic reply from the fake model."


@dataclass
class ToolCallSpec:
    """One tool call in a scripted reply. ``id=None`` → a generated id; ``id=""`` → the id is omitted."""

    name: str
    arguments: str = "{}"
    id: str | None = None
    chunks: int = 3  # argument fragments


@dataclass
class Reply:
    """One scripted model response (or an error)."""

    text: str | None = None  # None with no tool_calls → the default text
    chunks: int | None = None  # split the text into this many chunks; None → one chunk per word
    tool_calls: list[ToolCallSpec] = field(default_factory=list)
    finish_reason: str | None = None  # override (OpenAI names; the Anthropic fake maps them)
    error: int | None = None  # HTTP status to answer with instead of a completion
    message: str = "Simulated upstream error."
    error_type: str | None = None
    error_code: str | None = None
    retry_after: float | None = None  # sent as a retry-after header with errors
    ttft_s: float | None = None  # None → the server default
    tokens_per_s: float | None = None  # None → the server default (0/None = no pacing)
    usage: bool = True  # False: never report usage
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    drop_after: int | None = None  # close the connection abruptly after this many text chunks


Responder = Callable[[dict], Reply]


def echo_responder(body: dict) -> Reply:
    """Answers with the text of the last user message (works for both wire formats)."""
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            return Reply(text=f"You said: {content_text(message.get('content'))}")
    return Reply(text="You said nothing.")


def content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def split_text(text: str, chunks: int | None) -> list[str]:
    if not text:
        return []
    if chunks is None:
        return re.findall(r"\s*\S+\s*$|\s*\S+", text) or [text]
    chunks = max(1, min(chunks, len(text)))
    size, extra = divmod(len(text), chunks)
    pieces, start = [], 0
    for i in range(chunks):
        end = start + size + (1 if i < extra else 0)
        pieces.append(text[start:end])
        start = end
    return pieces


def count_prompt_words(body: dict) -> int:
    total = 0
    system = body.get("system")
    if system:
        total += len(content_text(system).split()) if not isinstance(system, str) else len(system.split())
    for m in body.get("messages", []):
        c = m.get("content")
        total += len(content_text(c).split())
        if isinstance(c, list):
            total += sum(
                len(json.dumps(p.get("input", p.get("content", ""))).split())
                for p in c
                if isinstance(p, dict) and p.get("type") in ("tool_use", "tool_result")
            )
    return max(1, total)


class FakeServer:
    """A Starlette app served by uvicorn in a daemon thread. Subclasses provide ``build_app``."""

    url_suffix = ""

    def __init__(
        self,
        port: int = 0,
        *,
        ttft_s: float = 0.0,
        tokens_per_s: float | None = None,
        default_text: str = DEFAULT_TEXT,
    ) -> None:
        self.port = port
        self.ttft_s = ttft_s
        self.tokens_per_s = tokens_per_s
        self.default_text = default_text
        self.responder: Responder | None = None
        self.requests: list[dict] = []
        self.request_headers: list[dict[str, str]] = []
        self.abandoned = 0  # streams the client closed before their end (FakeOpenAI)
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._counter = 0
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # scripting

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.request_headers.clear()
            self.responder = None
            self.abandoned = 0

    def record(self, body: dict, headers: dict[str, str]) -> int:
        """Log a request; returns its 1-based number."""
        with self._lock:
            self.requests.append(body)
            self.request_headers.append(headers)
            self._counter += 1
            return self._counter

    def take_reply(self, body: dict) -> Reply:
        """The next scripted reply, else the responder's, else the default text."""
        with self._lock:
            reply = self._queue.popleft() if self._queue else None
            responder = self.responder
        if reply is None:
            reply = responder(body) if responder else Reply(text=self.default_text)
        return reply

    def next_reply(self, body: dict, headers: dict[str, str]) -> tuple[int, Reply]:
        return self.record(body, headers), self.take_reply(body)

    def reply_text(self, reply: Reply) -> str:
        if reply.text is not None:
            return reply.text
        return "" if reply.tool_calls else self.default_text

    async def pace(self, reply: Reply, first: bool) -> None:
        if first:
            delay = self.ttft_s if reply.ttft_s is None else reply.ttft_s
        else:
            rate = self.tokens_per_s if reply.tokens_per_s is None else reply.tokens_per_s
            delay = 1.0 / rate if rate else 0.0
        if delay > 0:
            await asyncio.sleep(delay)

    # lifecycle

    def build_app(self) -> Any:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.url_suffix}"

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        sock.listen(2048)  # accept-queue connections made before uvicorn is up
        return sock

    def _make_server(self) -> Any:
        import uvicorn

        config = uvicorn.Config(
            self.build_app(),
            log_level="critical",  # dropped connections (drop_after) are deliberate
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        return uvicorn.Server(config)

    def start(self) -> FakeServer:
        sock = self._bind()
        self._server = self._make_server()
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{type(self).__name__} did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(3)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(3)
        self._server = None
        self._thread = None

    def serve_forever(self) -> None:
        """Run in the foreground (command-line use)."""
        sock = self._bind()
        print(f"{type(self).__name__} listening on {self.base_url}", flush=True)
        self._make_server().run(sockets=[sock])

    def __enter__(self):  # noqa: ANN204
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class DropConnection(Exception):
    """Raised inside a streaming body to cut the connection mid-response."""


def sse(data: Any, event: str | None = None) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"


def cli_args(description: str, default_port: int) -> Any:
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument("--ttft-ms", type=float, default=0.0, help="delay before the first chunk")
    parser.add_argument("--tokens-per-s", type=float, default=0.0, help="chunk rate; 0 = unpaced")
    parser.add_argument("--reply-tokens", type=int, default=0, help="reply with N words (0 = default text)")
    parser.add_argument("--echo", action="store_true", help="echo the last user message")
    return parser.parse_args()


def configure_from_cli(fake: FakeServer, args: Any) -> FakeServer:
    fake.ttft_s = args.ttft_ms / 1000.0
    fake.tokens_per_s = args.tokens_per_s or None
    if args.reply_tokens:
        fake.default_text = " ".join(f"word{i}" for i in range(args.reply_tokens))
    if args.echo:
        fake.responder = echo_responder
    return fake


def __getattr__(name: str) -> Any:
    # lazy, so that ``python -m tests.fakes.fake_openai`` does not import its own module twice
    if name == "FakeOpenAI":
        from .fake_openai import FakeOpenAI

        return FakeOpenAI
    if name == "FakeAnthropic":
        from .fake_anthropic import FakeAnthropic

        return FakeAnthropic
    raise AttributeError(name)
