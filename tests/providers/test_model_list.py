"""GET /v1/models and /v1/models/{id}: the models the routes serve, upstream lists included, never failing."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import openai
import pytest

from fakes.fake_anthropic import FakeAnthropic
from fakes.fake_openai import FakeOpenAI
from support.schemas import validate
from support.sdk import make_client
from support.server import ServerFactory, ServerHandle


@pytest.fixture(scope="module")
def silent_upstream() -> Iterator[str]:
    """A port that accepts connections and never answers (an upstream that hangs)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    sock.close()


@pytest.fixture(scope="module")
def models_server(
    server_factory: ServerFactory,
    backend: str,
    tmp_path_factory: pytest.TempPathFactory,
    _openai_server: FakeOpenAI,
    _anthropic_server: FakeAnthropic,
    silent_upstream: str,
) -> Iterator[ServerHandle]:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    down = f"http://127.0.0.1:{closed.getsockname()[1]}/v1"
    closed.close()  # nothing listens there any more: connection refused
    fake = _openai_server.base_url
    routes = {
        "routes": [
            {"model": "house-model", "provider": "openai", "base_url": fake},
            {"prefix": "local/", "provider": "openai", "base_url": fake, "strip_prefix": True},
            {"prefix": "down/", "provider": "openai", "base_url": down, "strip_prefix": True},
            {"prefix": "hang/", "provider": "openai", "base_url": silent_upstream, "strip_prefix": True},
            {"prefix": "fixed-", "provider": "openai", "base_url": fake, "upstream_model": "gpt-4o-mini"},
        ],
        "models": {"table-model": {"context_window": 32768}},
    }
    path = tmp_path_factory.mktemp("routes") / "providers.json"
    path.write_text(json.dumps(routes))
    env = {
        "OPENAI_API_KEY": "k",
        "OPENAI_BASE_URL": fake,
        "ANTHROPIC_API_KEY": "ak",
        "ANTHROPIC_BASE_URL": _anthropic_server.base_url,
        "THREADLINE_PROVIDERS_FILE": str(path),
        "THREADLINE_UPSTREAM_MODELS_TIMEOUT_S": "1",
    }
    handle = server_factory.start(env=env, backend=backend)
    yield handle
    handle.stop()


EXPECTED = [
    "claude-haiku-4-5",  # the claude-* route's Anthropic upstream
    "claude-sonnet-4-5",
    "fake-model",  # the default OpenAI-compatible upstream
    "gpt-4o-mini",
    "house-model",  # an exact route
    "local/fake-model",  # a prefix route with strip_prefix, from its upstream
    "local/gpt-4o-mini",
    "table-model",  # the routes file's models table
]


def test_list_shows_every_route_and_survives_dead_upstreams(models_server, _openai_server):
    with httpx.Client(base_url=models_server.base_url, timeout=60) as http:
        response = http.get("/models")
        assert response.status_code == 200
        body = response.json()
        validate("ListModelsResponse", body)
        assert [m["id"] for m in body["data"]] == EXPECTED
        by_id = {m["id"]: m for m in body["data"]}
        assert by_id["gpt-4o-mini"]["owned_by"] == "fake" and by_id["house-model"]["owned_by"] == "openai"
        assert by_id["claude-sonnet-4-5"]["created"] == 1759104000 and by_id["claude-sonnet-4-5"]["owned_by"]
        _openai_server.models = ["something-new"]  # cached: the next listing does not ask again
        try:
            assert [m["id"] for m in http.get("/models").json()["data"]] == EXPECTED
        finally:
            _openai_server.models = ["gpt-4o-mini", "fake-model"]


def test_retrieve_known_unknown_and_unlistable(models_server, validator):
    client = make_client(models_server.base_url, validator=validator)
    model = client.models.retrieve("gpt-4o-mini")
    assert model.id == "gpt-4o-mini" and model.object == "model" and model.owned_by == "fake"
    assert [m.id for m in client.models.list()] == EXPECTED
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("no-such-model")
    error = info.value.body
    assert error["message"] == "The model 'no-such-model' does not exist or you do not have access to it."
    assert error["code"] == "model_not_found" and error["type"] == "invalid_request_error"
    with httpx.Client(base_url=models_server.base_url, timeout=60) as http:
        for name, status in [
            ("house-model", 200),
            ("local/gpt-4o-mini", 200),  # ids with "/" (routing prefixes) work
            ("local/nope", 404),  # the upstream listed its models and this is not one
            ("down/anything", 200),  # the upstream is down: a routable name cannot be ruled out
            ("fixed-anything", 200),  # an upstream_model route serves every name it matches
            ("claude-nope", 404),
        ]:
            response = http.get(f"/models/{name}")
            assert response.status_code == status, (name, response.text)
            if status == 200:
                validate("Model", response.json())
                assert response.json()["id"] == name
            else:
                assert response.json()["error"]["code"] == "model_not_found"


def test_no_provider_lists_nothing(client):
    assert client.models.list().data == []
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")
