"""What the engine needs from the server's Runtime (app.Runtime implements it), as a typed protocol."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from ..clock import Clock
from ..config import Settings
from ..limits import Limits
from ..providers.base import ChatProvider
from ..store import BlobStore, Store

if TYPE_CHECKING:
    from .tools import ServerTool


class ModelRoutes(Protocol):
    """Which provider serves a model (providers.router.ProviderRouter, metrics.InstrumentedRouter)."""

    def resolve(self, model: str) -> tuple[ChatProvider, str]:
        """(provider, upstream model name); raises providers.base.ProviderError for a model no route serves."""
        ...

    def context_window(self, model: str) -> int:
        """The model's context window in tokens."""
        ...


class EngineRuntime(Protocol):
    """The parts of the server an execution uses."""

    settings: Settings  # run_lease_s, run_expires_after_s
    store: Store
    blobs: BlobStore  # image files sent as vision input
    clock: Clock  # expiry, leases
    providers: ModelRoutes
    server_tools: Mapping[str, ServerTool]  # by tool type: "file_search", "code_interpreter"
    limits: Limits  # rate and spend limits checked before each model call; spend alerts
