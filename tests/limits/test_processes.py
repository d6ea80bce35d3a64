"""Limits across server processes sharing one database: a change made through one process applies at once in the
other (the cache follows NOTIFY on PostgreSQL, the version counter on SQLite), and both count the same requests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from fakes.fake_openai import FakeOpenAI
from support.llm import llm_env
from support.server import ServerFactory, ServerHandle

from .conftest import ADMIN_KEY, KEY, MODELS

PROJECT = "/organization/projects/proj_default"
HEADERS = {"OpenAI-Beta": "assistants=v2"}


@pytest.fixture(scope="module")
def pair(server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI) -> Iterator[list[ServerHandle]]:
    """Two `serve` processes on one database (and, for SQLite, one data dir)."""
    fake_llm.models = [*MODELS]
    env = llm_env(fake_llm, THREADLINE_ADMIN_KEYS=ADMIN_KEY, THREADLINE_API_KEYS=KEY)
    first = server_factory.prepare(env=env, backend=backend)
    second = server_factory.prepare(env=env, backend=backend)
    second.data_dir, second.database_url = first.data_dir, first.database_url
    handles = [first.start(timeout=60), second.start(timeout=60)]
    yield handles
    for handle in handles:
        handle.stop()


def client(handle: ServerHandle, key: str) -> httpx.Client:
    return httpx.Client(base_url=handle.base_url, headers={**HEADERS, "Authorization": f"Bearer {key}"}, timeout=60)


def streamed_run(http: httpx.Client, assistant_id: str) -> httpx.Response:
    """Create a thread and a streamed run on it and read the stream to its end."""
    body = {"assistant_id": assistant_id, "stream": True, "thread": {"messages": [{"role": "user", "content": "Hi"}]}}
    with http.stream("POST", "/threads/runs", json=body) as response:
        response.read()
    return response


def test_a_limit_set_through_one_process_applies_in_the_other(pair: list[ServerHandle]) -> None:
    users = [client(h, KEY) for h in pair]
    admins = [client(h, ADMIN_KEY) for h in pair]
    try:
        assistant = users[0].post("/assistants", json={"model": "free-model"}).json()["id"]
        for http in users:  # each process has read (and cached) the limits: none
            assert streamed_run(http, assistant).status_code == 200
        rpm = {"max_requests_per_1_minute": 3}
        assert admins[0].post(f"{PROJECT}/rate_limits/rl-free-model", json=rpm).status_code == 200
        # Both processes count against the one limit: three runs in all, whichever process serves them.
        statuses = [streamed_run(users[i % 2], assistant).status_code for i in range(6)]
        assert statuses == [200, 200, 200, 429, 429, 429]
        # Lifted through the other process: both see it at once.
        assert admins[1].post(f"{PROJECT}/rate_limits/rl-free-model", json={"max_requests_per_1_minute": 0}).is_success
        assert [streamed_run(users[i % 2], assistant).status_code for i in range(4)] == [200] * 4
    finally:
        for http in users + admins:
            http.close()
