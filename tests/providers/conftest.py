"""Fixtures: the fake LLM servers (test doubles) shared by the provider tests.

``tests/`` is on sys.path (see tests/conftest.py), so the fakes import as ``fakes``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.fake_anthropic import FakeAnthropic
from fakes.fake_openai import FakeOpenAI


@pytest.fixture(scope="session")
def _openai_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="session")
def _anthropic_server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def fake_openai(_openai_server: FakeOpenAI) -> FakeOpenAI:
    _openai_server.reset()
    return _openai_server


@pytest.fixture
def fake_anthropic(_anthropic_server: FakeAnthropic) -> FakeAnthropic:
    _anthropic_server.reset()
    return _anthropic_server
