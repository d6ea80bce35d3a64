"""Plug points: every implementation has its protocol's members, and docs/architecture.md's table names them."""

from __future__ import annotations

import asyncio
import inspect
import re
import typing
from pathlib import Path

import pytest

from threadline import readiness
from threadline.clock import Clock, ManualClock, SystemClock
from threadline.code_interpreter import CodeInterpreterTool, SandboxLinks
from threadline.config import Settings
from threadline.engine.assistants import AssistantsProjection
from threadline.engine.cancel import CancelSignal, NotifiedCancelSignal, PolledCancelSignal
from threadline.engine.context import ContextSource, ThreadContext
from threadline.engine.projection import Projection
from threadline.engine.queue_pg import PostgresRunQueue
from threadline.engine.queue_sqlite import SqliteRunQueue
from threadline.engine.response_context import ResponsesContext
from threadline.engine.responses import ResponsesProjection
from threadline.engine.runtime import EngineRuntime
from threadline.engine.tools import ServerTool, TextProcessor
from threadline.engine.worker import InProcessQueue, RunQueue
from threadline.file_search import CitationProcessor, FileSearchTool, RetrievalService
from threadline.providers.anthropic import AnthropicProvider
from threadline.providers.base import ChatProvider
from threadline.providers.openai_compat import OpenAICompatProvider
from threadline.retrieval.embeddings import Embedder, OnnxEmbedder, OpenAIEmbedder
from threadline.retrieval.index import ChunkIndex
from threadline.retrieval.index_postgres import PostgresChunkIndex
from threadline.retrieval.index_sqlite import SqliteChunkIndex
from threadline.sandbox import RemoteSandbox, Sandbox, SandboxManager
from threadline.services.deps import Deps
from threadline.store import Store
from threadline.store.blobs import BlobStore, LocalBlobStore
from threadline.store.blobs_s3 import S3BlobStore
from threadline.tracing import TracedTool
from threadline.vector_stores import Ingestor

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"

# protocol (as the table's "Protocol" column names it) -> its implementations
PLUG_POINTS: dict[str, tuple[type, list[type]]] = {
    "store.blobs.BlobStore": (BlobStore, [LocalBlobStore, S3BlobStore]),
    "providers.base.ChatProvider": (ChatProvider, [OpenAICompatProvider, AnthropicProvider]),
    "clock.Clock": (Clock, [SystemClock, ManualClock]),
    "engine.worker.RunQueue": (RunQueue, [InProcessQueue, SqliteRunQueue, PostgresRunQueue]),
    "engine.cancel.CancelSignal": (CancelSignal, [PolledCancelSignal, NotifiedCancelSignal]),
    "engine.tools.ServerTool": (ServerTool, [FileSearchTool, CodeInterpreterTool, TracedTool]),
    "engine.tools.TextProcessor": (TextProcessor, [CitationProcessor, SandboxLinks]),
    "retrieval.embeddings.Embedder": (Embedder, [OnnxEmbedder, OpenAIEmbedder]),
    "retrieval.index.ChunkIndex": (ChunkIndex, [SqliteChunkIndex, PostgresChunkIndex]),
    "sandbox.Sandbox": (Sandbox, [SandboxManager, RemoteSandbox]),
    "engine.context.ContextSource": (ContextSource, [ThreadContext, ResponsesContext]),
    "engine.projection.Projection": (Projection, [AssistantsProjection, ResponsesProjection]),
}
PARTS = [Deps, readiness.ReadinessParts, EngineRuntime]


# names the parts protocols import only for type checking
TYPE_NAMES = {
    "Settings": Settings,
    "Clock": Clock,
    "Store": Store,
    "BlobStore": BlobStore,
    "RetrievalService": RetrievalService,
    "Ingestor": Ingestor,
    "Sandbox": Sandbox,
    "ServerTool": ServerTool,
    "asyncio": asyncio,
}


def members(protocol: type) -> dict[str, object]:
    """The protocol's own members: methods and properties by value, annotated attributes as None."""
    found: dict[str, object] = {}
    for klass in reversed(protocol.__mro__):
        if klass in (object,) or klass.__name__ in ("Protocol", "Generic"):
            continue
        for name in getattr(klass, "__annotations__", {}):
            found.setdefault(name, None)
        for name, value in vars(klass).items():
            if not name.startswith("_"):
                found[name] = value
    return found


def has_attribute(impl: type, name: str) -> bool:
    if hasattr(impl, name):
        return True
    source = inspect.getsource(impl)
    return re.search(rf"\bself\.{name}\s*(:[^=\n]*)?=", source) is not None


def positional_names(fn: object) -> list[str]:
    fn = fn.fget if isinstance(fn, property) else fn
    params = inspect.signature(fn).parameters.values()  # type: ignore[arg-type]
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][1:]


@pytest.mark.parametrize("dotted", sorted(PLUG_POINTS))
def test_implementations_have_the_protocol_members(dotted: str) -> None:
    protocol, impls = PLUG_POINTS[dotted]
    assert getattr(protocol, "_is_protocol", False), f"{dotted} is not a typing.Protocol"
    for impl in impls:
        for name, value in members(protocol).items():
            assert has_attribute(impl, name), f"{impl.__name__} lacks {dotted}.{name}"
            if callable(value) or isinstance(value, property):
                got = inspect.getattr_static(impl, name)
                assert callable(got) or isinstance(got, property), f"{impl.__name__}.{name}"
                if callable(value) and not isinstance(got, property):
                    want = positional_names(value)
                    assert positional_names(got)[: len(want)] == want, f"{impl.__name__}.{name} parameters"


def test_architecture_table_names_each_protocol_and_implementation() -> None:
    text = DOC.read_text()
    section = text[text.index("## Plug points") : text.index("\n## ", text.index("## Plug points") + 1)]
    rows = {row.split("|")[2].strip(): row for row in section.splitlines() if row.startswith("| ") and "---" not in row}
    for dotted, (_, impls) in PLUG_POINTS.items():
        row = next((r for cell, r in rows.items() if cell.startswith(f"`{dotted}`")), None)
        assert row is not None, f"no table row names `{dotted}`"
        for impl in impls:
            assert f"`{impl.__name__}`" in row, f"the `{dotted}` row does not name `{impl.__name__}`"
    for cell in rows:  # every dotted name in the Protocol column exists
        for dotted in re.findall(r"`((?:[a-z_]+\.)+[A-Z]\w+)`", cell):
            module, _, name = dotted.rpartition(".")
            imported = __import__(f"threadline.{module}", fromlist=[name])
            assert hasattr(imported, name), dotted


@pytest.mark.anyio
async def test_the_runtime_has_what_its_parts_protocols_ask(app) -> None:  # noqa: ANN001
    rt = app.state.runtime
    for parts in PARTS:
        hints = typing.get_type_hints(parts, localns=TYPE_NAMES)
        for name, value in members(parts).items():
            assert hasattr(rt, name), f"Runtime lacks {parts.__name__}.{name}"
            if isinstance(value, property):
                want = typing.get_type_hints(value.fget, localns=TYPE_NAMES)["return"]
            else:
                want = hints.get(name)
            if isinstance(want, type) and not getattr(want, "_is_protocol", False):
                assert isinstance(getattr(rt, name), want), f"Runtime.{name} is not a {want.__name__}"
    for name, tool in rt.server_tools.items():
        assert tool.type == name and callable(tool.execute)
    # the machine's sandbox service (not started: nothing asked for it yet)
    assert isinstance(rt.sandbox, RemoteSandbox) and rt.sandbox.last_status is None
