"""API keys (THREADLINE_API_KEYS) and the OpenAI-Beta header (contract §4.2, §4.3)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from support.schemas import ResponseValidator
from support.sdk import make_client, raw_http_client
from support.server import ServerFactory, ServerHandle

from .helpers import expect_error


@pytest.fixture(scope="module")
def keyed_server(server_factory: ServerFactory, backend: str) -> Iterator[ServerHandle]:
    handle = server_factory.start(env={"THREADLINE_API_KEYS": "k1-secret-key, k2-other-key"}, backend=backend)
    yield handle
    handle.stop()


def keyed_client(server: ServerHandle, validator: ResponseValidator, key: str) -> openai.OpenAI:
    return make_client(server.base_url, api_key=key, validator=validator)


@pytest.mark.parametrize("key", ["k1-secret-key", "k2-other-key"])
def test_right_keys_work(keyed_server: ServerHandle, validator: ResponseValidator, key: str) -> None:
    client = keyed_client(keyed_server, validator, key)
    a = client.beta.assistants.create(model="m")
    assert client.beta.assistants.retrieve(a.id).id == a.id
    f = client.files.create(file=("k.txt", b"k"), purpose="assistants")
    assert client.files.content(f.id).content == b"k"


def test_wrong_key(keyed_server: ServerHandle, validator: ResponseValidator) -> None:
    client = keyed_client(keyed_server, validator, "sk-wrong-0123456789")
    err = expect_error(openai.AuthenticationError, lambda: client.beta.assistants.list(), code="invalid_api_key")
    assert err["message"].startswith("Incorrect API key provided: ")
    assert "0123456789" not in err["message"]  # the key is masked
    assert err["type"] == "invalid_request_error"
    expect_error(openai.AuthenticationError, lambda: client.files.list())
    expect_error(openai.AuthenticationError, lambda: client.files.create(file=("x.txt", b"x"), purpose="assistants"))


def test_no_key(keyed_server: ServerHandle, validator: ResponseValidator) -> None:
    with raw_http_client(keyed_server.base_url, api_key=None, validator=validator) as http:
        for method, path in [("GET", "/assistants"), ("POST", "/threads"), ("GET", "/files"), ("POST", "/uploads")]:
            r = http.request(method, path, json={} if method == "POST" else None)
            assert r.status_code == 401, (method, path, r.text)
            err = r.json()["error"]
            assert "You didn't provide an API key" in err["message"]
        r = http.get("/assistants", headers={"Authorization": "Bearer"})
        assert r.status_code == 401
        r = http.get("/assistants", headers={"Authorization": "Basic azE6azE="})
        assert r.status_code == 401


def test_health_needs_no_key(keyed_server: ServerHandle) -> None:
    assert httpx.get(f"{keyed_server.root_url}/health").status_code == 200


def test_open_server_accepts_any_key(server: ServerHandle, validator: ResponseValidator) -> None:
    client = make_client(server.base_url, api_key="anything", validator=validator)
    assert client.beta.assistants.list(limit=1).data is not None


def test_beta_v1_header_rejected(client: openai.OpenAI) -> None:
    err = expect_error(
        openai.BadRequestError,
        lambda: client.beta.assistants.list(extra_headers={"OpenAI-Beta": "assistants=v1"}),
        code="invalid_beta",
    )
    assert err["message"].startswith("The v1 Assistants API has been deprecated.")
    expect_error(
        openai.BadRequestError,
        lambda: client.beta.threads.create(extra_headers={"OpenAI-Beta": "assistants=v1"}),
        code="invalid_beta",
    )


def test_beta_header_optional(http: Any) -> None:
    r = http.post("/assistants", json={"model": "m"}, headers={"OpenAI-Beta": ""})
    assert r.status_code == 200, r.text
    del http.headers["OpenAI-Beta"]
    assert http.get(f"/assistants/{r.json()['id']}").status_code == 200
    assert http.post("/threads", json={}).status_code == 200


def test_request_id_header(http: Any) -> None:
    r = http.get("/assistants")
    assert r.headers.get("x-request-id", "").startswith("req_")
    r = http.get("/assistants/asst_missing")
    assert r.status_code == 404 and r.headers.get("x-request-id", "").startswith("req_")
