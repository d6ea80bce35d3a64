"""A run's short writes on the event loop (SQLite): they give way to a thread when another process holds the write
lock, so the server keeps answering; a write that must read a blob (an image for the model) runs in a thread."""

from __future__ import annotations

import base64
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest

from fakes import Reply
from fakes.fake_openai import FakeOpenAI
from support.server import ServerHandle

from .conftest import HEADERS, wait_for

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def test_writes_wait_while_another_process_holds_the_write_lock(
    server: ServerHandle, backend: str, http: httpx.Client, fake_llm: FakeOpenAI
) -> None:
    if backend != "sqlite":
        pytest.skip("SQLite's write lock")
    fake_llm.script(Reply(text="after the lock"), Reply(text="after the lock"))
    assistant = http.post("/assistants", json={"model": "gpt-4o"}).json()["id"]
    threads = [
        http.post("/threads", json={"messages": [{"role": "user", "content": "hi"}]}).json()["id"] for _ in "abc"
    ]
    reader = http.post("/threads", json={"messages": [{"role": "user", "content": "read me"}]}).json()["id"]

    # Another process (this one) takes SQLite's write lock and keeps it.
    db = sqlite3.connect(Path(server.database_url.removeprefix("sqlite:///")), isolation_level=None, timeout=30)
    db.execute("BEGIN IMMEDIATE")
    replies: dict[str, httpx.Response] = {}

    def write(name: str, path: str, body: dict) -> None:
        with httpx.Client(base_url=server.base_url, headers=HEADERS, timeout=120) as c:
            replies[name] = c.post(path, json=body)

    posts = [
        ("message", f"/threads/{threads[0]}/messages", {"role": "user", "content": "x"}),
        ("run", f"/threads/{threads[1]}/runs", {"assistant_id": assistant}),
        ("stream", f"/threads/{threads[2]}/runs", {"assistant_id": assistant, "stream": True}),
    ]
    writers = [threading.Thread(target=write, args=post) for post in posts]
    try:
        for t in writers:
            t.start()
        time.sleep(0.5)  # the writes are waiting for the lock now
        assert not replies, {k: r.text for k, r in replies.items()}
        # The server still answers while its writes wait (each request on a new connection, so that every process
        # of the server is asked).
        for _ in range(6):
            assert httpx.get(f"{server.root_url}/health", timeout=10).status_code == 200
            page = httpx.get(f"{server.base_url}/threads/{reader}/messages", headers=HEADERS, timeout=10)
            assert page.status_code == 200 and page.json()["data"][0]["content"][0]["text"]["value"] == "read me"
        assert not replies, {k: r.text for k, r in replies.items()}  # nothing was written past the lock
    finally:
        db.execute("COMMIT")
        db.close()
    for t in writers:
        t.join(120)
    assert replies["message"].status_code == 200, replies["message"].text
    assert replies["run"].status_code == 200, replies["run"].text
    assert replies["stream"].status_code == 200 and "thread.run.completed" in replies["stream"].text
    run = replies["run"].json()
    done = wait_for(lambda: http.get(f"/threads/{threads[1]}/runs/{run['id']}").json()["status"] == "completed")
    assert done, http.get(f"/threads/{threads[1]}/runs/{run['id']}").json()
    texts = [m["content"][0]["text"]["value"] for m in http.get(f"/threads/{threads[1]}/messages").json()["data"]]
    assert texts == ["after the lock", "hi"]


def test_image_file_reaches_the_model_from_a_queued_and_a_streamed_run(
    http: httpx.Client, fake_llm: FakeOpenAI
) -> None:
    image = http.post("/files", files={"file": ("dot.png", PNG, "image/png")}, data={"purpose": "vision"}).json()["id"]
    assistant = http.post("/assistants", json={"model": "gpt-4o"}).json()["id"]
    content = [{"type": "text", "text": "what is it?"}, {"type": "image_file", "image_file": {"file_id": image}}]
    for stream in (False, True):
        fake_llm.reset()
        fake_llm.script(Reply(text="a dot"))
        thread = http.post("/threads", json={"messages": [{"role": "user", "content": content}]}).json()["id"]
        reply = http.post(f"/threads/{thread}/runs", json={"assistant_id": assistant, "stream": stream})
        assert reply.status_code == 200, reply.text
        if not stream:
            path = f"/threads/{thread}/runs/{reply.json()['id']}"
            status = wait_for(lambda p=path: (s := http.get(p).json()["status"]) in ("completed", "failed") and s)
            assert status == "completed"
        else:
            assert "thread.run.completed" in reply.text
        (request,) = fake_llm.requests
        parts = request["messages"][-1]["content"]
        urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
        assert urls == ["data:image/png;base64," + base64.b64encode(PNG).decode()]
