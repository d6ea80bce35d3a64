"""Cancelling a run interrupts a file_search waiting for the thread's vector store to finish ingesting."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from fakes import Reply, ToolCallSpec
from fakes.fake_openai import FakeOpenAI
from support.llm import llm_env
from support.server import ServerFactory, ServerHandle

CANCEL_BOUND_S = 5.0
HEADERS = {"OpenAI-Beta": "assistants=v2", "Authorization": "Bearer test"}


class SilentEndpoint:
    """TEST DOUBLE: accepts TCP connections and never answers (an embeddings service that hangs)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.conns: list[socket.socket] = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.closed = True
        for c in [*self.conns, self.sock]:
            c.close()


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI) -> Iterator[ServerHandle]:
    silent = SilentEndpoint()
    env = llm_env(
        fake_llm,
        THREADLINE_EMBEDDINGS="openai",
        THREADLINE_EMBEDDINGS_BASE_URL=silent.base_url,
        THREADLINE_EMBEDDINGS_DIM="16",
    )
    handle = server_factory.start(env=env, backend=backend)
    yield handle
    silent.close()  # the server's ingestion gives up quickly once connections are refused
    handle.stop()


def test_cancel_interrupts_the_wait_for_ingestion(server: ServerHandle, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(
        Reply(tool_calls=[ToolCallSpec("file_search", json.dumps({"query": "zebras"}))]), Reply(text="never said")
    )
    with httpx.Client(base_url=server.base_url, headers=HEADERS, timeout=60) as http:
        file_id = http.post(
            "/files", files={"file": ("z.txt", b"Zebras have stripes.")}, data={"purpose": "assistants"}
        ).json()["id"]
        thread_id = http.post(
            "/threads",
            json={
                "messages": [{"role": "user", "content": "zebras?"}],
                "tool_resources": {"file_search": {"vector_stores": [{"file_ids": [file_id]}]}},
            },
        ).json()["id"]
        assistant_id = http.post("/assistants", json={"model": "gpt-4o", "tools": [{"type": "file_search"}]}).json()[
            "id"
        ]
        run_id = http.post(f"/threads/{thread_id}/runs", json={"assistant_id": assistant_id}).json()["id"]
        deadline = time.monotonic() + 30
        while not any(
            s["type"] == "tool_calls" for s in http.get(f"/threads/{thread_id}/runs/{run_id}/steps").json()["data"]
        ):
            assert time.monotonic() < deadline, "the file_search call never started"
            time.sleep(0.05)
        time.sleep(1.0)  # waiting for the store's file, which cannot finish
        store_id = http.get(f"/threads/{thread_id}").json()["tool_resources"]["file_search"]["vector_store_ids"][0]
        assert http.get(f"/vector_stores/{store_id}").json()["status"] == "in_progress"
        started = time.monotonic()
        http.post(f"/threads/{thread_id}/runs/{run_id}/cancel").raise_for_status()
        while (run := http.get(f"/threads/{thread_id}/runs/{run_id}").json())["status"] != "cancelled":
            assert time.monotonic() - started < CANCEL_BOUND_S, f"still {run['status']}"
            time.sleep(0.05)
        step = http.get(f"/threads/{thread_id}/runs/{run_id}/steps").json()["data"][0]
        assert step["status"] == "cancelled"
        assert http.post(f"/threads/{thread_id}/messages", json={"role": "user", "content": "x"}).status_code == 200
