"""A server with an admin key, a project key, a test price file, the scripted fake LLM (listing the test models) and
a spend alert webhook receiver (a real local HTTP server), fresh per module: spend is exact only on a server nobody
else used."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fakes.fake_openai import FakeOpenAI
from support.llm import llm_server
from support.sdk import make_client, raw_http_client
from support.server import ServerFactory, ServerHandle

ADMIN_KEY = "sk-admin-limits-0123456789"
KEY = "sk-project-limits-0123456789"
# Round prices: 100 input tokens of `priced-model` cost 10 cents, 10 output tokens 2 cents.
PRICES = {"models": {"priced-model": {"input_per_mtok": 1000.0, "output_per_mtok": 2000.0}}}
MODELS = ["priced-model", "rpm-model", "tpm-model", "free-model"]


class Webhook:
    """A local HTTP server that records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/alerts"


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    hook.thread.start()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


@pytest.fixture(scope="module")
def prices() -> dict[str, Any]:
    return PRICES


@pytest.fixture(scope="module")
def server(
    server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI, price_file: Path, webhook: Webhook
) -> Iterator[ServerHandle]:
    fake_llm.models = [*MODELS]
    yield from llm_server(
        server_factory,
        backend,
        fake_llm,
        THREADLINE_ADMIN_KEYS=ADMIN_KEY,
        THREADLINE_API_KEYS=KEY,
        THREADLINE_PRICES_FILE=str(price_file),
        THREADLINE_SPEND_ALERT_WEBHOOK_URL=webhook.url,
        THREADLINE_LOG_FORMAT="json",
    )


@pytest.fixture(autouse=True)
def _fresh_fake(fake_llm: FakeOpenAI) -> None:
    fake_llm.reset()


@pytest.fixture
def client(server: ServerHandle, validator):  # noqa: ANN001, ANN201
    c = make_client(server.base_url, api_key=KEY, validator=validator)
    yield c
    c.close()


@pytest.fixture(scope="module")
def admin_key() -> str:
    return ADMIN_KEY


@pytest.fixture
def http(server: ServerHandle, validator):  # noqa: ANN001, ANN201
    with raw_http_client(server.base_url, api_key=KEY, validator=validator) as c:
        yield c
