"""A server with admin and project keys, a test price file and the scripted fake LLM, fresh per module (usage
sums are exact only on a server nobody else used)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fakes.fake_openai import FakeOpenAI
from support.llm import llm_server
from support.sdk import make_client
from support.server import ServerFactory, ServerHandle

ADMIN_KEY = "sk-admin-test-0123456789"
KEY_A = "sk-project-a-0123456789"
KEY_B = "sk-project-b-0123456789"
# USD per million tokens / per unit: round numbers, so the expected amounts are easy to check by hand.
PRICES = {
    "models": {
        "model-a": {"input_per_mtok": 1.0, "cached_input_per_mtok": 0.5, "output_per_mtok": 2.0},
        "model-b": {"input_per_mtok": 3.0, "output_per_mtok": 4.0},
    },
    "tools": {"code_interpreter_session": 0.03, "vector_store_gb_day": 0.1, "file_search_call": 0.0025},
}


def usd(price: dict, input_tokens: int, output_tokens: int) -> float:
    """What `price` (one model's entry in PRICES) charges for the tokens, in USD."""
    return (input_tokens * price["input_per_mtok"] + output_tokens * price["output_per_mtok"]) / 1e6


@pytest.fixture(scope="module")
def prices() -> dict[str, Any]:
    return PRICES


@pytest.fixture(scope="module")
def server(
    server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI, price_file: Path
) -> Iterator[ServerHandle]:
    yield from llm_server(
        server_factory,
        backend,
        fake_llm,
        THREADLINE_ADMIN_KEYS=ADMIN_KEY,
        THREADLINE_API_KEYS=f"{KEY_A},{KEY_B}",
        THREADLINE_PRICES_FILE=str(price_file),
    )


@pytest.fixture(autouse=True)
def _fresh_fake(fake_llm: FakeOpenAI) -> None:
    fake_llm.reset()


@pytest.fixture
def client_a(server: ServerHandle, validator):  # noqa: ANN001, ANN201
    c = make_client(server.base_url, api_key=KEY_A, validator=validator)
    yield c
    c.close()


@pytest.fixture
def client_b(server: ServerHandle, validator):  # noqa: ANN001, ANN201
    c = make_client(server.base_url, api_key=KEY_B, validator=validator)
    yield c
    c.close()


@pytest.fixture(scope="module")
def admin_key() -> str:
    return ADMIN_KEY
