"""CPU of one API request through the whole app, in process: no sockets, no uvicorn, no other processes.

Calls the ASGI app (all middleware, routing, FastAPI, the store) directly with a GET
``/v1/threads/{id}/messages?limit=20`` (``--endpoint get``: one message) on a 40-message thread in a fresh SQLite
data directory, and prints the process CPU time per request. Sequential and single-threaded apart from FastAPI's
threadpool, so it suits an exact count: run it under callgrind twice with different ``--n`` and divide the
difference by the difference in requests (start-up, seeding and the warm-up cancel out):

    valgrind --tool=callgrind .venv/bin/python bench/bench_request_path.py --n 100
    valgrind --tool=callgrind .venv/bin/python bench/bench_request_path.py --n 500
    .venv/bin/python bench/bench_request_path.py --n 3000 --profile     # cProfile, by cumulative time
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

os.environ["THREADLINE_API_KEYS"] = ""

from threadline.app import create_app  # noqa: E402
from threadline.config import Settings  # noqa: E402


async def call(app: Any, method: str, path: str, query: bytes = b"", body: bytes = b"") -> tuple[int, list, bytes]:
    """One request through the ASGI app: (status, headers, body)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [
            (b"host", b"localhost"),
            (b"content-type", b"application/json"),
            (b"openai-beta", b"assistants=v2"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    sent = False
    start: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        else:
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return start["status"], start["headers"], b"".join(chunks)


async def main(n: int, profile: bool, endpoint: str) -> None:
    app = create_app(Settings.load(data_dir=Path(tempfile.mkdtemp(prefix="bench-path-"))))
    async with app.router.lifespan_context(app):
        _, _, body = await call(app, "POST", "/v1/threads", body=b"{}")
        path = f"/v1/threads/{orjson.loads(body)['id']}/messages"
        message = orjson.dumps({"role": "user", "content": "hello " * 30})
        for _ in range(40):
            _, _, body = await call(app, "POST", path, body=message)
        query = b"limit=20"
        if endpoint == "get":
            path, query = f"{path}/{orjson.loads(body)['id']}", b""
        for _ in range(300):
            status, _, body = await call(app, "GET", path, query)
            assert status == 200, body
        profiler = cProfile.Profile() if profile else None
        if profiler:
            profiler.enable()
        cpu = time.process_time()
        for _ in range(n):
            await call(app, "GET", path, query)
        cpu = time.process_time() - cpu
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(50)
        label = "messages?limit=20" if endpoint == "list" else "messages/{message_id}"
        print(f"GET {label}: {cpu / n * 1e6:.0f} µs CPU per request ({n} requests)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000, help="measured requests (default 3000)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the measured requests")
    parser.add_argument("--endpoint", choices=("list", "get"), default="list", help="list (default) or get")
    args = parser.parse_args()
    asyncio.run(main(args.n, args.profile, args.endpoint))
