"""Fixtures for code_interpreter runs: the fake LLM scripts code; the real sandbox executes it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from fakes import Reply, ToolCallSpec
from fakes.fake_openai import FakeOpenAI
from support.llm import llm_server
from support.server import ServerFactory, ServerHandle


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI) -> Iterator[ServerHandle]:
    # A wall clock no loaded machine reaches with the suite's small cells (test_timeout_is_reported_as_output
    # uses its own server with a short one).
    env = {
        "THREADLINE_SANDBOX_TIMEOUT_S": "120",
        "THREADLINE_SANDBOX_MAX_OUTPUT_FILES": "3",
        "THREADLINE_SANDBOX_WARM_POOL": "1",
    }
    yield from llm_server(server_factory, backend, fake_llm, **env)


@pytest.fixture(autouse=True)
def _fresh_fake(fake_llm: FakeOpenAI) -> None:
    fake_llm.reset()


def run_code(code: str, answer: str) -> list[Reply]:
    return [
        Reply(tool_calls=[ToolCallSpec("code_interpreter", json.dumps({"code": code}))]),
        Reply(text=answer, chunks=3),
    ]
