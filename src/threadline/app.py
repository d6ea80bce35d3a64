"""The FastAPI application and the Runtime object that holds the server's parts."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from .api import assistants, files, messages, runs, threads, uploads
from .api.errors import install_handlers
from .auth import KeyChecker
from .config import Settings
from .engine.executor import RunExecutor
from .engine.worker import InProcessQueue, Workers
from .middleware import APIMiddleware
from .providers import router as provider_router
from .store import LocalBlobStore, Store

log = logging.getLogger("threadline")


class Runtime:
    """Everything a request handler needs: settings, the store, blob storage and (later) the run engine."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(settings.effective_database_url)
        self.store.migrate()
        self.blobs = LocalBlobStore(settings.blob_dir)
        self.keys = KeyChecker(self.store, settings.api_keys)
        self.providers = provider_router.from_env()
        self.server_tools: dict[str, Any] = {}
        self.executor = RunExecutor(self)
        self.queue = InProcessQueue()
        self.workers = Workers(self, self.executor, self.queue, settings.run_workers)

    async def start(self) -> None:
        await self.workers.start(recover_all=self.store.backend == "sqlite")

    async def stop(self) -> None:
        await self.workers.stop()
        self.store.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    runtime = Runtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="threadline",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.runtime = runtime
    install_handlers(app)
    for module in (assistants, runs, threads, messages, files, uploads):  # runs first: /threads/runs
        app.include_router(module.router)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "store": runtime.store.backend}

    app.add_middleware(APIMiddleware, keys=runtime.keys)
    return app
