"""pytest plugin with the shared fixtures (loaded by tests/conftest.py; documented there)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .postgres import PostgresCluster
from .schemas import ResponseValidator
from .sdk import make_client, raw_http_client, silence_beta_warnings
from .server import ServerFactory, ServerHandle, selected_backends, server_python

FACTORY_KEY = pytest.StashKey[ServerFactory]()
LOG_TAIL_LINES = 40


def pytest_configure(config: pytest.Config) -> None:
    silence_beta_warnings()
    config.addinivalue_line("filterwarnings", "ignore:.*Assistants API is deprecated:DeprecationWarning")
    config.addinivalue_line("filterwarnings", "ignore:deprecated$:DeprecationWarning")  # SDK assistants methods
    config.addinivalue_line("filterwarnings", "ignore:XDG_RUNTIME_DIR is not set")  # platformdirs, environment noise


@pytest.fixture(scope="session")
def server_factory(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    factory = ServerFactory(tmp_path_factory.mktemp("servers"))
    request.config.stash[FACTORY_KEY] = factory
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="session")
def pg_cluster(server_factory: ServerFactory) -> PostgresCluster:
    """The session's PostgreSQL cluster (the same one the servers use); .create_database() gives a fresh URL."""
    return server_factory.postgres


@pytest.fixture(scope="session", params=selected_backends())
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def server(server_factory: ServerFactory, backend: str) -> Iterator[ServerHandle]:
    """One plain server per backend, shared by the test modules that do not need a special one.

    Tests using it must not assume an empty server (list endpoints may hold other modules' objects). Modules that
    need their own configuration override `server` or call server_factory.start() themselves.
    """
    handle = server_factory.start(backend=backend, name=f"shared-{backend}")
    yield handle
    handle.stop()


@pytest.fixture
def validator() -> Iterator[ResponseValidator]:
    v = ResponseValidator()
    yield v
    v.assert_clean()


@pytest.fixture
def client(server: ServerHandle, validator: ResponseValidator):  # noqa: ANN201 - openai.OpenAI
    c = make_client(server.base_url, validator=validator)
    yield c
    c.close()


@pytest.fixture
def http(server: ServerHandle, validator: ResponseValidator):  # noqa: ANN201 - httpx.Client
    with raw_http_client(server.base_url, validator=validator) as c:
        yield c


@pytest.fixture
def admin(server: ServerHandle, validator: ResponseValidator, admin_key: str):  # noqa: ANN201 - httpx.Client
    """Raw HTTP with the admin key (the SDK has no administration client); every response validated."""
    with raw_http_client(server.base_url, api_key=admin_key, validator=validator) as c:
        yield c


@pytest.fixture(scope="module")
def price_file(tmp_path_factory: pytest.TempPathFactory, prices: dict[str, Any]) -> Path:
    """`prices` written as a THREADLINE_PRICES_FILE."""
    path = tmp_path_factory.mktemp("prices") / "prices.json"
    path.write_text(json.dumps(prices))
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ANN201
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    factory = item.config.stash.get(FACTORY_KEY, None)
    if factory is None:
        return
    for handle in factory.handles:
        touched = handle.log_path.exists() and handle.log_path.stat().st_mtime >= call.start - 1
        if handle.running or touched:
            report.sections.append(
                (f"server log tail: {handle.name} ({handle.base_url})", handle.log_tail(LOG_TAIL_LINES))
            )


def pytest_report_header(config: pytest.Config) -> str:
    import openai

    backends = ",".join(selected_backends())
    return f"threadline tests: openai {openai.__version__}, backends {backends}, server python {server_python()}"
