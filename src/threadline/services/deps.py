"""What the services use of the server's parts. threadline.app.Runtime provides all of them; tests may pass any
object with these attributes."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..clock import Clock
    from ..config import Settings
    from ..file_search import RetrievalService
    from ..sandbox import Sandbox
    from ..store import BlobStore, Store
    from ..vector_stores import Ingestor


class Deps(Protocol):
    @property
    def settings(self) -> Settings: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def store(self) -> Store: ...
    @property
    def blobs(self) -> BlobStore: ...
    @property
    def retrieval(self) -> RetrievalService: ...
    @property
    def ingestor(self) -> Ingestor: ...
    @property
    def sandbox(self) -> Sandbox: ...
    @property
    def loop(self) -> asyncio.AbstractEventLoop | None: ...
