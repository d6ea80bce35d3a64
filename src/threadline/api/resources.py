"""Wire objects built from request models and shared by several routers: tools and response formats; and
`add_messages`, the request-model form of services.messages.add."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..services import messages
from ..services.deps import Deps
from . import commands, models


def tool_object(tool: models.CodeInterpreterTool | models.FileSearchTool | models.FunctionTool) -> dict[str, Any]:
    if isinstance(tool, models.FunctionTool):
        fn = tool.function
        # description and parameters are optional but not nullable in the spec's FunctionObject: omit them.
        out: dict[str, Any] = {"name": fn.name}
        if fn.description is not None:
            out["description"] = fn.description
        if fn.parameters is not None:
            out["parameters"] = fn.parameters
        out["strict"] = bool(fn.strict)
        return {"type": "function", "function": out}
    if isinstance(tool, models.FileSearchTool):
        opts = tool.file_search or models.FileSearchOptions()
        ranking = opts.ranking_options or models.RankingOptions()
        fs: dict[str, Any] = {"ranking_options": {"ranker": ranking.ranker, "score_threshold": ranking.score_threshold}}
        if opts.max_num_results is not None:
            fs["max_num_results"] = opts.max_num_results
        return {"type": "file_search", "file_search": fs}
    return {"type": "code_interpreter"}


def response_format_object(value: Any) -> Any:
    if value is None or value == "auto":
        return "auto"
    out = value.model_dump(by_alias=True, exclude_none=True)
    return out


def add_messages(
    conn: sa.Connection,
    runtime: Deps,
    thread: dict[str, Any],
    bodies: list[models.MessageCreate],
    *,
    created_at: int | None = None,
) -> list[dict[str, Any]]:
    """services.messages.add for request models (a run's additional_messages)."""
    return messages.add(runtime, conn, thread, [commands.new_message(b) for b in bodies], created_at=created_at)
