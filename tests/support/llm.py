"""Shared pieces for tests whose server talks to the scripted fake LLM (a test double on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.fake_openai import FakeOpenAI

from .server import ServerFactory, ServerHandle


def llm_env(fake: FakeOpenAI, **extra: str) -> dict[str, str]:
    return {"OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": fake.base_url, "THREADLINE_POLL_AFTER_MS": "20", **extra}


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    fake.start()
    yield fake
    fake.stop()


def llm_server(factory: ServerFactory, backend: str, fake: FakeOpenAI, **extra: str) -> Iterator[ServerHandle]:
    handle = factory.start(env=llm_env(fake, **extra), backend=backend)
    yield handle
    handle.stop()
