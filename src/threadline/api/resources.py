"""Building wire objects shared by several routers: tools, tool_resources, message content."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..ids import new_id
from ..store import Store, now, schema
from . import models
from .common import check_id
from .errors import APIError, not_found


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


def check_file(conn: sa.Connection, file_id: str, param: str) -> dict:
    check_id("file", file_id, param)
    obj = Store.fetch(conn, schema.files, file_id)
    if obj is None:
        raise not_found("file", file_id)
    return obj


def check_vector_store(conn: sa.Connection, vs_id: str, param: str) -> dict:
    check_id("vector_store", vs_id, param)
    obj = Store.fetch(conn, schema.vector_stores, vs_id)
    if obj is None:
        raise not_found("vector store", vs_id)
    return obj


def tool_resources_object(
    conn: sa.Connection,
    runtime: Any,
    value: models.ToolResources | models.ToolResourcesIds | None,
    *,
    owner: str,
    existing: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Validate referenced files and vector stores; run the `vector_stores` helper when present."""
    out: dict[str, Any] = dict(existing or {})
    if value is None:
        return out
    if value.code_interpreter is not None:
        ids = value.code_interpreter.file_ids
        for i, file_id in enumerate(ids):
            check_file(conn, file_id, f"tool_resources.code_interpreter.file_ids[{i}]")
        out["code_interpreter"] = {"file_ids": list(dict.fromkeys(ids))}
    fs = value.file_search
    if fs is not None:
        if fs.vector_store_ids is not None:
            for i, vs_id in enumerate(fs.vector_store_ids):
                check_vector_store(conn, vs_id, f"tool_resources.file_search.vector_store_ids[{i}]")
            out["file_search"] = {"vector_store_ids": list(fs.vector_store_ids)}
        elif getattr(fs, "vector_stores", None):
            helper = fs.vector_stores[0]
            for i, file_id in enumerate(helper.file_ids):
                check_file(conn, file_id, f"tool_resources.file_search.vector_stores[0].file_ids[{i}]")
            factory = getattr(runtime, "create_vector_store_in_tx", None)
            if factory is None:
                raise APIError(400, "Creating vector stores through 'tool_resources' is not available.")
            vs_id = factory(conn, helper, owner=owner)
            out["file_search"] = {"vector_store_ids": [vs_id]}
        else:
            out["file_search"] = {"vector_store_ids": []}
    return out


def message_content(conn: sa.Connection, content: str | list[Any]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": {"value": content, "annotations": []}}]
    parts: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        if isinstance(part, models.TextPart):
            parts.append({"type": "text", "text": {"value": part.text, "annotations": []}})
        elif isinstance(part, models.ImageFilePart):
            check_file(conn, part.image_file.file_id, f"content[{i}].image_file.file_id")
            parts.append(
                {
                    "type": "image_file",
                    "image_file": {"file_id": part.image_file.file_id, "detail": part.image_file.detail or "auto"},
                }
            )
        else:
            parts.append(
                {
                    "type": "image_url",
                    "image_url": {"url": part.image_url.url, "detail": part.image_url.detail or "auto"},
                }
            )
    return parts


def message_object(
    conn: sa.Connection,
    thread_id: str,
    body: models.MessageCreate,
    *,
    created_at: int | None = None,
    run_id: str | None = None,
    assistant_id: str | None = None,
) -> dict[str, Any]:
    ts = created_at or now()
    attachments = []
    for i, att in enumerate(body.attachments or []):
        check_file(conn, att.file_id, f"attachments[{i}].file_id")
        attachments.append({"file_id": att.file_id, "tools": [{"type": t.type} for t in att.tools]})
    return {
        "id": new_id("message"),
        "object": "thread.message",
        "created_at": ts,
        "assistant_id": assistant_id,
        "thread_id": thread_id,
        "run_id": run_id,
        "status": "completed",
        "incomplete_details": None,
        "completed_at": ts,
        "incomplete_at": None,
        "role": body.role,
        "content": message_content(conn, body.content),
        "attachments": attachments,
        "metadata": body.metadata or {},
    }


def apply_attachments(conn: sa.Connection, runtime: Any, thread: dict[str, Any], message: dict[str, Any]) -> bool:
    """Attachments add files to the thread's tool_resources. Returns True when the thread changed."""
    changed = False
    resources = thread.setdefault("tool_resources", {})
    for att in message.get("attachments") or []:
        kinds = {t["type"] for t in att["tools"]}
        if "code_interpreter" in kinds:
            ids = resources.setdefault("code_interpreter", {"file_ids": []})["file_ids"]
            if att["file_id"] not in ids:
                ids.append(att["file_id"])
                changed = True
        if "file_search" in kinds:
            attach = getattr(runtime, "attach_to_thread_vector_store", None)
            if attach is not None:
                attach(conn, thread, att["file_id"])
                changed = True
    return changed


def add_messages(
    conn: sa.Connection,
    runtime: Any,
    thread: dict[str, Any],
    bodies: list[models.MessageCreate],
    *,
    created_at: int | None = None,
) -> list[dict[str, Any]]:
    """Add user-supplied messages to a stored thread, the one path for every way of adding messages
    (messages.create, threads.create(messages=...), create-thread-and-run's thread.messages and a run's
    additional_messages): validates each message, stores it, and applies its attachments to the thread's
    tool_resources (saving the thread when they changed it). Returns the stored messages in order.

    Raises APIError (400/404) for a bad content part or attachment; the caller's transaction rolls back."""
    changed = False
    out = []
    for body in bodies:
        message = message_object(conn, thread["id"], body, created_at=created_at)
        changed = apply_attachments(conn, runtime, thread, message) or changed
        Store.insert(conn, schema.messages, message, thread_id=thread["id"])
        out.append(message)
    if changed:
        Store.update(conn, schema.threads, thread)
    return out
