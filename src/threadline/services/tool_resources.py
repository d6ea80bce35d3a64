"""tool_resources of assistants and threads: checking the files and vector stores they name, and running the
`vector_stores` helper that creates a store from files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from . import files, vector_stores
from .deps import Deps
from .vector_stores import NewVectorStore


@dataclass
class FileSearchResources:
    """`vector_store_ids` (None: not sent) or `vector_stores`, the helper (at most one store to create)."""

    vector_store_ids: list[str] | None = None
    vector_stores: list[NewVectorStore] | None = None


@dataclass
class ToolResources:
    """What a request sent as tool_resources: `code_interpreter` is its file_ids (None: not sent)."""

    code_interpreter: list[str] | None = None
    file_search: FileSearchResources | None = None


def resolve(
    deps: Deps,
    conn: sa.Connection,
    value: ToolResources | None,
    *,
    owner: str,
    existing: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The stored tool_resources of `owner` (an assistant or thread id): `existing` with what `value` sets replaced.

    Checks every referenced file and vector store (raising Invalid / NotFound with the param path, e.g.
    `tool_resources.code_interpreter.file_ids[0]`) and creates the helper's vector store in `conn`'s transaction."""
    out: dict[str, Any] = dict(existing or {})
    if value is None:
        return out
    if value.code_interpreter is not None:
        ids = value.code_interpreter
        for i, file_id in enumerate(ids):
            files.require(conn, file_id, f"tool_resources.code_interpreter.file_ids[{i}]")
        out["code_interpreter"] = {"file_ids": list(dict.fromkeys(ids))}
    fs = value.file_search
    if fs is not None:
        if fs.vector_store_ids is not None:
            for i, vs_id in enumerate(fs.vector_store_ids):
                vector_stores.require(conn, vs_id, f"tool_resources.file_search.vector_store_ids[{i}]")
            out["file_search"] = {"vector_store_ids": list(fs.vector_store_ids)}
        elif fs.vector_stores:
            helper = fs.vector_stores[0]
            for i, file_id in enumerate(helper.file_ids):
                files.require(conn, file_id, f"tool_resources.file_search.vector_stores[0].file_ids[{i}]")
            out["file_search"] = {"vector_store_ids": [vector_stores.create_from_helper(deps, conn, helper, owner)]}
        else:
            out["file_search"] = {"vector_store_ids": []}
    return out
