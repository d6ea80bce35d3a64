"""Cancel latency: time from `POST .../cancel` to the run being `cancelled`, for a poller and a stream reader.

Three waits are interrupted: the model's first token (fake LLM with a 12 s time to first token), a sandbox
execution (`time.sleep(30)`) and a file_search waiting for the thread's vector store to finish ingestion (the
embedder never answers). The poller polls GET .../runs/{id} every 50 ms; the stream reader reads the run's SSE
stream until `thread.run.cancelled`. For the model wait, the cancel is also sent to a second server process on the
same database (the executing process learns of it by polling).

    .venv/bin/python bench/bench_cancel.py [--backend sqlite] [--scenarios model,code,vector_store]
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO)]

from fakes import Reply, ToolCallSpec  # noqa: E402
from fakes.fake_openai import FakeOpenAI  # noqa: E402
from support.server import ServerFactory  # noqa: E402

HEADERS = {"OpenAI-Beta": "assistants=v2", "Authorization": "Bearer x"}


class SilentServer:
    """Accepts TCP connections and never answers (an embeddings endpoint that hangs)."""

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


def scenario_setup(http: httpx.Client, fake: FakeOpenAI, kind: str) -> tuple[str, dict[str, Any]]:
    """Script the fake and create an assistant and thread; returns (thread_id, run body)."""
    fake.reset()  # replies an earlier cancelled run never asked for
    if kind == "model":
        fake.script(Reply(text="late answer", ttft_s=12))
        tools: list[dict] = []
        thread = http.post("/threads", json={"messages": [{"role": "user", "content": "hi"}]}).json()
    elif kind == "code":
        code = "import time\ntime.sleep(30)\nprint('done')"
        fake.script(Reply(tool_calls=[ToolCallSpec("code_interpreter", json.dumps({"code": code}))]), Reply(text="ok"))
        tools = [{"type": "code_interpreter"}]
        thread = http.post("/threads", json={"messages": [{"role": "user", "content": "sleep"}]}).json()
    else:
        fake.script(Reply(tool_calls=[ToolCallSpec("file_search", json.dumps({"query": "zebras"}))]), Reply(text="ok"))
        tools = [{"type": "file_search"}]
        up = http.post(
            "/files", files={"file": ("z.txt", b"Zebras have stripes.")}, data={"purpose": "assistants"}
        ).json()
        thread = http.post(
            "/threads",
            json={
                "messages": [{"role": "user", "content": "zebras?"}],
                "tool_resources": {"file_search": {"vector_stores": [{"file_ids": [up["id"]]}]}},
            },
        ).json()
    assistant = http.post("/assistants", json={"model": "gpt-4o", "tools": tools}).json()
    return thread["id"], {"assistant_id": assistant["id"]}


def busy(http: httpx.Client, thread_id: str, run_id: str, kind: str) -> None:
    """Wait until the run is inside the wait that cancel must interrupt."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        run = http.get(f"/threads/{thread_id}/runs/{run_id}").json()
        if run["status"] == "in_progress":
            if kind == "model":
                break
            steps = http.get(f"/threads/{thread_id}/runs/{run_id}/steps").json()["data"]
            if any(s["type"] == "tool_calls" for s in steps):
                break
        time.sleep(0.05)
    time.sleep(1.0)  # well inside the wait


def poller(base: str, fake: FakeOpenAI, kind: str, cancel_base: str | None = None) -> float:
    """Cancel (through `cancel_base`, another server process on the same database, if given) and poll there."""
    with (
        httpx.Client(base_url=base, headers=HEADERS, timeout=120) as http,
        httpx.Client(base_url=cancel_base or base, headers=HEADERS, timeout=120) as other,
    ):
        thread_id, body = scenario_setup(http, fake, kind)
        run = http.post(f"/threads/{thread_id}/runs", json=body).json()
        busy(http, thread_id, run["id"], kind)
        t0 = time.monotonic()
        other.post(f"/threads/{thread_id}/runs/{run['id']}/cancel")
        while other.get(f"/threads/{thread_id}/runs/{run['id']}").json()["status"] != "cancelled":
            if time.monotonic() - t0 > 120:
                raise RuntimeError("the run was not cancelled within 120 s")
            time.sleep(0.05)
        return time.monotonic() - t0


def stream_reader(base: str, fake: FakeOpenAI, kind: str) -> float:
    with httpx.Client(base_url=base, headers=HEADERS, timeout=120) as http:
        thread_id, body = scenario_setup(http, fake, kind)
        result: dict[str, float] = {}
        run_id: dict[str, str] = {}
        ready = threading.Event()
        seen: list[str | None] = []

        def read() -> None:
            with http.stream("POST", f"/threads/{thread_id}/runs", json={**body, "stream": True}) as r:
                event = None
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event == "thread.run.created":
                        run_id["id"] = json.loads(line[6:])["id"]
                        ready.set()
                    if line.startswith("event: "):
                        seen.append(event)
                    if event == "thread.run.cancelled":
                        result["t"] = time.monotonic()
                        return

        reader = threading.Thread(target=read)
        reader.start()
        ready.wait(30)
        with httpx.Client(base_url=base, headers=HEADERS, timeout=120) as other:
            busy(other, thread_id, run_id["id"], kind)
            t0 = time.monotonic()
            other.post(f"/threads/{thread_id}/runs/{run_id['id']}/cancel")
        reader.join(120)
        if "t" not in result:
            raise RuntimeError(f"no thread.run.cancelled within 120 s; events: {seen}")
        return result["t"] - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="sqlite")
    parser.add_argument("--scenarios", default="model,code,vector_store")
    args = parser.parse_args()
    silent = SilentServer()
    fake = FakeOpenAI().start()
    env = {
        "OPENAI_API_KEY": "k",
        "OPENAI_BASE_URL": fake.base_url,
        "THREADLINE_EMBEDDINGS": "openai",
        "THREADLINE_EMBEDDINGS_BASE_URL": silent.base_url,
        "THREADLINE_EMBEDDINGS_DIM": "16",
    }
    with tempfile.TemporaryDirectory() as tmp, ServerFactory(Path(tmp)) as factory:
        server = factory.prepare(env=env, backend=args.backend)
        second = factory.prepare(env=env, backend=args.backend)
        second.database_url = server.database_url
        server.start()
        second.start()
        for kind in args.scenarios.split(","):
            p = poller(server.base_url, fake, kind)
            print(f"{kind:13s} poller {p:6.2f} s", flush=True)
            s = stream_reader(server.base_url, fake, kind)
            print(f"{kind:13s} stream reader {s:6.2f} s", flush=True)
            if kind == "model":
                c = poller(server.base_url, fake, kind, cancel_base=second.base_url)
                print(f"{kind:13s} poller, cancelled through another process {c:6.2f} s", flush=True)
        silent.close()
        second.stop()
        server.stop()
    fake.stop()


if __name__ == "__main__":
    main()
