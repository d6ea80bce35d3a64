"""The FastAPI application and the Runtime object that holds the server's parts."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from . import console, metrics, tracing
from . import vector_stores as vs
from .api import (
    assistants,
    containers,
    conversations,
    files,
    limits,
    messages,
    model_list,
    organization,
    projects,
    responses,
    responses_ws,
    runs,
    threads,
    uploads,
    vector_stores,
)
from .api.errors import install_handlers
from .auth import KeyChecker
from .clock import Clock, SystemClock
from .code_interpreter import CodeInterpreterTool
from .config import Settings
from .engine import cancel, queue_pg, queue_sqlite
from .engine.cancel import NotifiedCancelSignal, PolledCancelSignal
from .engine.executor import OWNER, RunExecutor
from .engine.owners import liveness, sqlite_dir
from .engine.queue_pg import PostgresRunQueue
from .engine.queue_sqlite import SqliteRunQueue
from .engine.sweeper import Sweeper
from .engine.tools import ServerTool
from .engine.worker import InProcessQueue, RunQueue, Workers
from .file_search import FileSearchTool, RetrievalService
from .limits import Limits
from .middleware import APIMiddleware, BodyLimit
from .providers import router as provider_router
from .providers.listing import ModelLister
from .readiness import readiness
from .sandbox import Sandbox
from .sandbox.selection import open_sandbox
from .services import containers as services_containers
from .services import uploads as services_uploads
from .services import usage as services_usage
from .services import vector_stores as services_vector_stores
from .services.prices import Prices
from .store import Store
from .store.blobs import BlobStore, open_blob_store
from .store.listen import PgListener
from .store.storage import StorageReserve, is_disk_full

ORPHAN_MIN_AGE_S = 3600.0  # a blob is written just before its row commits; older unreferenced ones are orphans

log = logging.getLogger("threadline")


class Runtime:
    """Everything a request handler needs: settings, the store, blob storage and the run engine.

    `providers` replaces the router built from the settings (THREADLINE_PROVIDERS_FILE, OPENAI_*, ANTHROPIC_*),
    e.g. ProviderRouter.single(an in-memory provider) in tests; `clock` is where run expiry, leases and sweeps read
    the time (SystemClock by default; tests pass a ManualClock and advance it instead of sleeping).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        providers: provider_router.ProviderRouter | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings: Settings = settings
        self.clock: Clock = clock or SystemClock()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        services_vector_stores.configure(settings)
        self.store: Store = Store(settings.effective_database_url)
        self.store.migrate()
        self.blobs: BlobStore = open_blob_store(settings.blob_url, settings.blob_dir)
        self.reserve: StorageReserve = _storage_reserve(self.store, settings)
        self.reserve.ensure()
        self._maintenance: list[asyncio.Task[None]] = []
        self.keys: KeyChecker = KeyChecker(self.store, settings.api_keys, settings.admin_keys)
        self.prices: Prices = Prices.load(settings.prices_file)
        # vector store sizes for usage: every 10 maintenance passes (5 min by default)
        self.vector_store_snapshots = services_usage.VectorStoreSnapshots(10 * settings.maintenance_s)
        router = providers or provider_router.from_settings(settings)
        self.providers: metrics.InstrumentedRouter = metrics.InstrumentedRouter(router)
        self.model_lister: ModelLister = ModelLister.from_settings(router, settings)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.retrieval: RetrievalService = RetrievalService(self.store, self.blobs, settings)
        self.ingestor: vs.Ingestor = vs.Ingestor(self)
        # The machine's shared sandbox service (started on demand), or an in-process manager (sandbox/selection.py)
        self.sandbox: Sandbox = open_sandbox(settings)
        self.server_tools: dict[str, ServerTool] = {
            "file_search": FileSearchTool(self),
            "code_interpreter": CodeInterpreterTool(self, self.sandbox),
        }
        if tracing.setup(settings):
            self.server_tools = {name: tracing.TracedTool(tool) for name, tool in self.server_tools.items()}
        # Several processes may share the database (`serve --workers N`, `threadline worker`, other machines on
        # PostgreSQL): the queue, the cancellation signal and the sweeper are the ones that work across them.
        self.listener: PgListener | None = None
        self.queue: RunQueue
        if self.store.backend == "postgres":
            self.listener = PgListener(self.store.engine)
            self.queue = PostgresRunQueue(
                self, self.listener, settings.queue_poll_s or queue_pg.POLL_S, holds=settings.run_workers > 0
            )
            signal: PolledCancelSignal = NotifiedCancelSignal(
                self.store, self.listener, settings.cancel_poll_s or cancel.NOTIFIED_POLL_INTERVAL_S
            )
        else:
            poll_s = settings.queue_poll_s or queue_sqlite.POLL_S
            if sqlite_dir(self.store.engine) is None:  # in memory: this process alone
                self.queue = InProcessQueue()
            else:
                self.queue = SqliteRunQueue(self, holds=settings.run_workers > 0, poll_s=poll_s)
            signal = PolledCancelSignal(self.store, settings.cancel_poll_s or cancel.POLL_INTERVAL_S)
        self.limits: Limits = Limits(
            self.store,
            self.prices,
            self.clock,
            webhook_url=settings.spend_alert_webhook_url,
            webhook_timeout_s=settings.spend_alert_webhook_timeout_s,
            listener=self.listener,
        )
        self.executor: RunExecutor = RunExecutor(self, signal)
        self.workers: Workers = Workers(self, self.executor, self.queue, settings.run_workers)
        self.sweeper = Sweeper(self, self.workers, liveness(self.store.engine, OWNER))

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.keys.start()
        await self.sweeper.start()
        if self.listener is not None:
            await asyncio.to_thread(self.listener.start)
        await self.workers.start()
        self._maintenance = [asyncio.create_task(self._sweep_orphans()), asyncio.create_task(self._maintain())]
        await self.ingestor.start()
        if self.settings.sandbox_warm_pool:
            ok, reason = await self.sandbox.start()
            if not ok:
                log.warning("code_interpreter unavailable: %s", reason)

    async def stop(self) -> None:
        for task in self._maintenance:
            task.cancel()
        await asyncio.gather(*self._maintenance, return_exceptions=True)
        await self.sandbox.aclose()
        await self.ingestor.stop()
        await self.workers.stop()
        await self.sweeper.stop()
        await self.executor.signal.aclose()
        await self.limits.aclose()
        if self.listener is not None:
            await asyncio.to_thread(self.listener.stop)
        self.keys.close()
        self.store.close()
        tracing.shutdown()

    async def _sweep_orphans(self) -> None:
        """Delete blobs left by writes that died between the blob and its database row (crash, kill -9), and chunks
        whose clean-up after a delete failed."""
        try:
            count, freed = await asyncio.to_thread(self.blobs.sweep, self.store.referenced_blob_keys, ORPHAN_MIN_AGE_S)
        except Exception:
            log.exception("sweeping orphaned blobs failed")
            return
        if count:
            log.warning("deleted %d orphaned blob file(s), %d bytes", count, freed)
        try:
            pruned = await asyncio.to_thread(self.retrieval.index.prune)
        except Exception:
            log.exception("pruning the chunk index failed")
            return
        if pruned:
            log.warning("deleted the chunks of %d file(s) no longer in their vector store", pruned)

    async def _maintain(self) -> None:
        """Every `maintenance_s` (30 s): take the storage reserve back once there is room again (deletes on a full disk
        release it), delete the parts of uploads that expired, expire idle containers, and take the day's vector
        store sizes (usage)."""
        while True:
            await asyncio.sleep(self.settings.maintenance_s)
            try:
                if self.reserve.held < self.reserve.size:
                    await asyncio.to_thread(self.reserve.ensure)
                await asyncio.to_thread(services_uploads.expire_stale, self)
                await services_containers.expire_due(self)
                await asyncio.to_thread(self.vector_store_snapshots.maybe_take, self.store, self.clock.now())
            except Exception as exc:
                if not is_disk_full(exc):
                    log.exception("storage maintenance failed")


def _storage_reserve(store: Store, settings: Settings) -> StorageReserve:
    """The reserve lives next to an SQLite database file (PostgreSQL keeps its own disk: no reserve)."""
    database = store.engine.url.database if store.backend == "sqlite" else None
    if not database or database == ":memory:":
        return StorageReserve(settings.data_dir / "storage.reserve", 0)
    path = Path(database).with_name(Path(database).name + ".reserve")
    return StorageReserve(path, int(settings.storage_reserve_mb * 2**20))


def create_app(
    settings: Settings | None = None,
    *,
    providers: provider_router.ProviderRouter | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """The ASGI app. Settings default to the environment's (Settings.load: SettingsError names a bad variable);
    `providers` and `clock` as for Runtime. The Runtime starts and stops with the app's lifespan and is at
    ``app.state.runtime``."""
    settings = settings or Settings.load()
    runtime = Runtime(settings, providers=providers, clock=clock)

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
    for module in (
        messages,
        runs,
        threads,
        assistants,
        files,
        uploads,
        vector_stores,
        model_list,
        conversations,
        responses,
        containers,
        limits,
        organization,
        projects,
    ):  # runs before threads: /threads/runs
        app.include_router(module.router)
    app.include_router(responses_ws.router)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "store": runtime.store.backend}

    @app.get("/health/ready")
    def ready() -> JSONResponse:
        report = readiness(runtime)
        return JSONResponse(report, status_code=200 if report["status"] == "ready" else 503)

    if settings.metrics:

        @app.get("/metrics")
        def metrics_endpoint() -> Response:
            body, content_type = metrics.render(
                runtime.store, runtime.executor.active, runtime.sandbox, settings.prometheus_multiproc_dir
            )
            return Response(body, media_type=content_type)

    console.install(app)
    app.add_middleware(BodyLimit, settings=settings)  # inside APIMiddleware: unauthenticated bodies are never read
    app.add_middleware(APIMiddleware, keys=runtime.keys)
    app.add_middleware(metrics.HTTPMetrics, routes=lambda: app.router.routes)
    return app


def app_from_env() -> FastAPI:
    """The app of one `threadline serve --workers N` process (uvicorn's factory): settings from the environment,
    which the parent process filled from its command line; logs in the configured format."""
    from .logs import configure

    settings = Settings.load()
    configure(logging.INFO, settings.log_format)
    for noisy in ("alembic", "httpx", "httpx2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return create_app(settings)
