"""The fast tier: the app in-process, driven by the official openai SDK through httpx.ASGITransport.

No server subprocess, no sockets, no sandbox warm pool, SQLite in a temp dir. The model is a ScriptedProvider
(tests/fast/scripted.py) and time is a ManualClock, so expiry and lease tests advance time instead of sleeping.
Wire compatibility stays proven by the end-to-end tier (the rest of tests/), which drives real servers.

Fixtures (test modules set `pytestmark = pytest.mark.anyio`; asyncio; the app's lifespan runs around each test):
    clock     ManualClock the runtime reads for expiry, leases and sweeps
    llm       ScriptedProvider every model name is routed to
    settings  Settings for the app (override the fixture, or use `make_app`, to change them)
    app       the FastAPI app, started (lifespan entered) and stopped after the test
    runtime   app.state.runtime
    client    openai.AsyncOpenAI on the app (sdk_client(app) makes one for an app a test builds itself)
    http      raw httpx.AsyncClient on the app (base_url .../v1, assistants=v2 header)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import openai
import pytest

from threadline.app import create_app
from threadline.clock import ManualClock
from threadline.config import Settings
from threadline.providers.router import ProviderRouter

from .scripted import ScriptedProvider

BASE = "http://threadline.test"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def llm() -> ScriptedProvider:
    return ScriptedProvider()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", run_workers=4, sandbox_warm_pool=0, storage_reserve_mb=0)


@pytest.fixture
async def app(settings: Settings, llm: ScriptedProvider, clock: ManualClock) -> AsyncIterator:
    application = create_app(settings, providers=ProviderRouter.single(llm), clock=clock)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def runtime(app):  # noqa: ANN001, ANN201 - threadline.app.Runtime
    return app.state.runtime


@pytest.fixture
async def http(app) -> AsyncIterator[httpx.AsyncClient]:  # noqa: ANN001
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=f"{BASE}/v1",
        headers={"OpenAI-Beta": "assistants=v2"},
        timeout=30,
    ) as c:
        yield c


@asynccontextmanager
async def sdk_client(app) -> AsyncIterator[openai.AsyncOpenAI]:  # noqa: ANN001
    """openai.AsyncOpenAI talking to `app` in-process (start the app's lifespan first)."""
    transport = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), timeout=30)
    c = openai.AsyncOpenAI(base_url=f"{BASE}/v1", api_key="test", http_client=transport, max_retries=0)
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
async def client(app) -> AsyncIterator[openai.AsyncOpenAI]:  # noqa: ANN001
    async with sdk_client(app) as c:
        yield c
