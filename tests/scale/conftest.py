"""Several server processes on one database: `serve` (API) processes, `threadline worker` processes, kill -9.

Fixtures:
    cluster  (function) Cluster: .api(**env) / .worker(**env) start a process on the test's shared database;
             every process is stopped after the test. The settings in SHORT are applied to every process; the fake
             model echoes the last user message unless a test scripts replies.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from fakes import echo_responder
from fakes.fake_openai import FakeOpenAI
from support.llm import llm_env
from support.server import ServerError, ServerFactory, ServerHandle

# Short leases and sweeps, so a dead process's runs are recovered quickly in the tests.
SHORT = {"THREADLINE_RUN_LEASE_S": "3"}
HEADERS = {"OpenAI-Beta": "assistants=v2", "Authorization": "Bearer test"}


class WorkerHandle(ServerHandle):
    """`threadline worker`: no HTTP; ready once it has logged so."""

    READY = "threadline worker ready"

    def command(self) -> list[str]:
        return [
            self.python,
            "-m",
            "threadline.cli",
            "worker",
            "--data-dir",
            str(self.data_dir),
            "--database-url",
            self.database_url,
            *self.args,
        ]

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.log_text().count(self.READY) < self.starts:
            if self.process is not None and self.process.poll() is not None:
                raise ServerError(f"{self.name} exited with code {self.process.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise ServerError(f"{self.name} was not ready in {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.05)


class Cluster:
    """Processes sharing one database (and, for SQLite, one data dir)."""

    def __init__(self, factory: ServerFactory, backend: str, fake: FakeOpenAI) -> None:
        self.factory = factory
        self.backend = backend
        self.fake = fake
        self.handles: list[ServerHandle] = []
        self.first: ServerHandle | None = None

    def _prepare(self, env: dict[str, str], args: list[str] | None = None) -> ServerHandle:
        handle = self.factory.prepare(env=llm_env(self.fake, **{**SHORT, **env}), backend=self.backend, args=args)
        if self.first is None:
            self.first = handle
        else:
            handle.data_dir = self.first.data_dir
            handle.database_url = self.first.database_url
        return handle

    def api(self, args: list[str] | None = None, **env: str) -> ServerHandle:
        """A `serve` process (started)."""
        handle = self._prepare(env, args)
        self.handles.append(handle)
        return handle.start(timeout=60)

    def worker(self, **env: str) -> WorkerHandle:
        """A `threadline worker` process (started)."""
        base = self._prepare(env)
        handle = WorkerHandle(
            name=base.name + "-worker",
            data_dir=base.data_dir,
            log_path=base.log_path,
            database_url=base.database_url,
            backend=base.backend,
            port=base.port,
            env=base.env,
            args=[],
            python=base.python,
        )
        self.handles.append(handle)
        return handle.start(timeout=60)

    def close(self) -> None:
        for handle in reversed(self.handles):
            handle.stop()


@pytest.fixture
def cluster(server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI) -> Iterator[Cluster]:
    fake_llm.reset()
    fake_llm.responder = echo_responder  # unscripted runs answer "You said: <last user message>"
    c = Cluster(server_factory, backend, fake_llm)
    yield c
    c.close()
    fake_llm.reset()


def http_client(handle: ServerHandle) -> httpx.Client:
    return httpx.Client(base_url=handle.base_url, headers=HEADERS, timeout=60)


def wait_run(http: httpx.Client, thread_id: str, run_id: str, statuses: set[str], timeout: float) -> dict:
    """Poll until the run's status is one of `statuses` (or `timeout` seconds passed); the run as last seen."""
    deadline = time.monotonic() + timeout
    while True:
        run = http.get(f"/threads/{thread_id}/runs/{run_id}").json()
        if run["status"] in statuses or time.monotonic() > deadline:
            return run
        time.sleep(0.05)


def nothing_open(http: httpx.Client, thread_id: str, run_id: str) -> None:
    """No message or step of the run is left in_progress, and the thread takes new messages."""
    messages = http.get(f"/threads/{thread_id}/messages", params={"run_id": run_id}).json()["data"]
    assert all(m["status"] != "in_progress" for m in messages), messages
    steps = http.get(f"/threads/{thread_id}/runs/{run_id}/steps").json()["data"]
    assert all(s["status"] != "in_progress" for s in steps), steps
    assert http.post(f"/threads/{thread_id}/messages", json={"role": "user", "content": "more"}).status_code == 200
