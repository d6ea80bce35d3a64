"""Conversations on the threads store: a conversation is a thread, its items are the rows of the thread's log.

Message items and Assistants messages are one row (contract §7.2). A message item added here is stored as the
Assistants message the thread view shows, plus the item as sent (`messages.item`), which the conversation view
returns; a message written through the Assistants API is rendered as an item from its message object:

- user text → `input_text`; assistant text → `output_text` (annotations mapped: `file_citation` becomes
  `{file_id, filename, index: end_index}`, `file_path` becomes `{file_id, index: start_index}`), `refusal` as is;
- `image_file` ⇄ `input_image {file_id}`, `image_url` ⇄ `input_image {image_url}` (`original` detail is `high` in the
  thread view); an `input_file` with a `file_id` is an attachment without tools in the thread view; files given
  by URL or inline data have no thread-view form and are left out of it;
- roles `system` and `developer` are shown as `user` messages in the thread view (the Assistants API has no such
  roles; an Assistants run on the thread still gives the model their text), and keep their role as items.

Other item types (function_call, function_call_output, reasoning, file_search_call, code_interpreter_call,
compaction) are rows of their own `type`, invisible to the Assistants message endpoints.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from ..ids import PREFIXES, conversation_id, new_id
from ..store import Store, loads, now, owned, schema
from ..store import items as log
from ..store.sql import MESSAGE
from . import response_models as rm
from .errors import Invalid, NotFound
from .files import require as check_file

LOCKED = "Another process is currently operating on this conversation. Please retry in a few seconds."


def conversation_object(thread: dict[str, Any]) -> dict[str, Any]:
    """The Conversations view of a threads row: `{id: conv_X, object, created_at, metadata}`."""
    return {
        "id": conversation_id(thread["id"]),
        "object": "conversation",
        "created_at": thread["created_at"],
        "metadata": thread.get("metadata") or {},
    }


def conversation_not_found(value: str) -> NotFound:
    return NotFound("conversation", value, f"Conversation with id '{value}' not found.")


def item_not_found(value: str) -> NotFound:
    return NotFound("item", value, f"Item with id '{value}' not found.")


def locked_error() -> Invalid:
    """The conversation's lock is held by a run or response (contract §4.2: a 400, never a retried 409)."""
    return Invalid(LOCKED, code="conversation_locked")


def new_thread(conn: sa.Connection, metadata: dict[str, Any] | None) -> dict[str, Any]:
    """Insert a threads row for a conversation created through the Conversations API."""
    thread = {
        "id": new_id("thread"),
        "object": "thread",
        "created_at": now(),
        "metadata": metadata or {},
        "tool_resources": {},
    }
    Store.insert(conn, schema.threads, thread)
    return thread


# -- input items → rows ------------------------------------------------------------------------------------------


def _assistants_part(part: Any) -> dict[str, Any] | None:
    if part.type in ("input_text", "output_text"):
        annotations = [a for a in (_assistants_annotation(x) for x in getattr(part, "annotations", [])) if a]
        return {"type": "text", "text": {"value": part.text, "annotations": annotations}}
    if part.type == "refusal":
        return {"type": "refusal", "refusal": part.refusal}
    if part.type == "input_image":
        detail = "high" if part.detail == "original" else part.detail
        if part.file_id is not None:
            return {"type": "image_file", "image_file": {"file_id": part.file_id, "detail": detail}}
        return {"type": "image_url", "image_url": {"url": part.image_url, "detail": detail}}
    return None  # input_file: an attachment in the thread view


def _assistants_annotation(a: Any) -> dict[str, Any] | None:
    if a.type == "file_citation":
        return {
            "type": "file_citation",
            "text": "",
            "file_citation": {"file_id": a.file_id},
            "start_index": a.index,
            "end_index": a.index,
        }
    if a.type == "file_path":
        return {
            "type": "file_path",
            "text": "",
            "file_path": {"file_id": a.file_id},
            "start_index": a.index,
            "end_index": a.index,
        }
    return None  # url and container-file citations have no Assistants form


def _item_part(part: Any) -> dict[str, Any]:
    if part.type == "output_text":
        return {
            "type": "output_text",
            "text": part.text,
            "annotations": [a.model_dump() for a in part.annotations],
            "logprobs": part.logprobs or [],
        }
    if part.type == "input_image":
        return {"type": "input_image", "image_url": part.image_url, "file_id": part.file_id, "detail": part.detail}
    return part.model_dump(exclude_none=True)


def _message_rows(conn: sa.Connection, thread_id: str, item: rm.MessageItem, param: str, ts: int) -> log.ItemRow:
    if isinstance(item.content, str):
        kind = "output_text" if item.role == "assistant" else "input_text"
        parts: list[Any] = [
            rm.OutputText(type="output_text", text=item.content)
            if kind == "output_text"
            else rm.InputText(type="input_text", text=item.content)
        ]
    else:
        parts = list(item.content)
    attachments = []
    for j, part in enumerate(parts):
        file_id = getattr(part, "file_id", None)
        if part.type in ("input_image", "input_file") and file_id is not None:
            check_file(conn, file_id, f"{param}.content[{j}].file_id")
            if part.type == "input_file":
                attachments.append({"file_id": file_id, "tools": []})
    message_id = new_id("message")
    status = item.status or "completed"
    message = {
        "id": message_id,
        "object": "thread.message",
        "created_at": ts,
        "assistant_id": None,
        "thread_id": thread_id,
        "run_id": None,
        "status": status,
        "incomplete_details": {"reason": "run_cancelled"} if status == "incomplete" else None,
        "completed_at": ts if status == "completed" else None,
        "incomplete_at": ts if status == "incomplete" else None,
        "role": "assistant" if item.role == "assistant" else "user",
        "content": [p for p in (_assistants_part(x) for x in parts) if p is not None],
        "attachments": attachments,
        "metadata": {},
    }
    as_item: dict[str, Any] = {
        "type": "message",
        "id": message_id,
        "status": status,
        "role": item.role,
        "content": [_item_part(p) for p in parts],
    }
    if item.phase is not None:
        as_item["phase"] = item.phase
    return log.ItemRow(id=message_id, type=MESSAGE, data=message, item=as_item)


def _other_row(item: Any) -> log.ItemRow:
    kind = item.type
    out: dict[str, Any] = {"id": new_id(kind), "type": kind}
    if kind == "function_call":
        out.update(call_id=item.call_id, name=item.name, arguments=item.arguments, status=item.status or "completed")
        if item.namespace is not None:
            out["namespace"] = item.namespace
    elif kind == "function_call_output":
        output = item.output if isinstance(item.output, str) else [p.model_dump(exclude_none=True) for p in item.output]
        out.update(call_id=item.call_id, output=output, status=item.status or "completed")
    elif kind == "reasoning":
        out["summary"] = [p.model_dump() for p in item.summary]
        if item.content is not None:
            out["content"] = [p.model_dump() for p in item.content]
        if item.encrypted_content is not None:
            out["encrypted_content"] = item.encrypted_content
        out["status"] = item.status or "completed"
    elif kind == "file_search_call":
        results = None if item.results is None else [r.model_dump() for r in item.results]
        out.update(status=item.status, queries=list(item.queries), results=results)
    elif kind == "code_interpreter_call":
        outputs = None if item.outputs is None else [o.model_dump() for o in item.outputs]
        out.update(status=item.status, container_id=item.container_id, code=item.code, outputs=outputs)
    elif kind == "compaction":
        out["encrypted_content"] = item.encrypted_content
        if item.created_by is not None:
            out["created_by"] = item.created_by
    return log.ItemRow(id=out["id"], type=kind, data=out)


def _referenced_row(conn: sa.Connection, thread_id: str, ref: rm.ItemReference, ts: int) -> log.ItemRow:
    found = log.find(conn, ref.id)
    if found is None:
        raise item_not_found(ref.id)
    if found.type == MESSAGE:
        new_message_id = new_id("message")
        message = {**found.data, "id": new_message_id, "thread_id": thread_id, "created_at": ts, "run_id": None}
        message["assistant_id"] = None
        item = {**found.item, "id": new_message_id} if found.item else None
        return log.ItemRow(id=new_message_id, type=MESSAGE, data=message, item=item)
    copy = {**found.data, "id": new_id(found.type if found.type in PREFIXES else "message")}
    return log.ItemRow(id=copy["id"], type=found.type, data=copy)


def build_rows(conn: sa.Connection, thread_id: str, items: Iterable[Any], *, param: str) -> list[log.ItemRow]:
    """Rows for input items (api.response_models.InputItem), in order, each with a new id; files named by message
    parts must exist (404), `item_reference`s must name a stored item (404)."""
    ts = now()
    rows = []
    for i, item in enumerate(items):
        where = f"{param}[{i}]"
        if isinstance(item, rm.MessageItem):
            rows.append(_message_rows(conn, thread_id, item, where, ts))
        elif isinstance(item, rm.ItemReference):
            rows.append(_referenced_row(conn, thread_id, item, ts))
        else:
            rows.append(_other_row(item))
    return rows


def add_items(conn: sa.Connection, thread_id: str, items: Iterable[Any], *, param: str = "items") -> list[log.ItemRow]:
    """Validate and append input items to a thread's log, in order (see build_rows). The caller holds the thread's
    lock and has checked that no run or response is active. Returns the stored rows."""
    rows = build_rows(conn, thread_id, items, param=param)
    log.append(conn, thread_id, rows, now())
    return rows


def as_items(conn: sa.Connection, items: Iterable[Any], *, param: str = "input") -> list[dict[str, Any]]:
    """Input items as stored items (ids given, defaults filled), without adding them to any conversation."""
    return [item_view(r, {}, set(rm.INCLUDABLE)) for r in build_rows(conn, "", items, param=param)]


# -- rows → items ------------------------------------------------------------------------------------------------


def filenames(conn: sa.Connection, rows: Iterable[log.ItemRow]) -> dict[str, str]:
    """Filenames of the files cited by the Assistants messages among `rows` (file_citation needs one)."""
    ids = {
        a["file_citation"]["file_id"]
        for r in rows
        if r.type == MESSAGE and r.item is None
        for p in r.data.get("content") or []
        if p.get("type") == "text"
        for a in p["text"].get("annotations") or []
        if a.get("type") == "file_citation"
    }
    if not ids:
        return {}
    f = schema.files
    out = {}
    for file_id, raw in conn.execute(sa.select(f.c.id, f.c.data).where(owned(f, f.c.id.in_(sorted(ids))))):
        out[file_id] = loads(raw)["filename"]
    return out


def message_item(message: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The message item of an Assistants message object (contract §7.2)."""
    assistant = message["role"] == "assistant"
    content: list[dict[str, Any]] = []
    for part in message.get("content") or []:
        kind = part.get("type")
        if kind == "text":
            text = part["text"]
            if not assistant:
                content.append({"type": "input_text", "text": text["value"]})
                continue
            annotations = []
            for a in text.get("annotations") or []:
                if a.get("type") == "file_citation":
                    file_id = a["file_citation"]["file_id"]
                    annotations.append(
                        {
                            "type": "file_citation",
                            "file_id": file_id,
                            "filename": names.get(file_id, ""),
                            "index": a["end_index"],
                        }
                    )
                elif a.get("type") == "file_path":
                    annotations.append(
                        {"type": "file_path", "file_id": a["file_path"]["file_id"], "index": a["start_index"]}
                    )
            content.append({"type": "output_text", "text": text["value"], "annotations": annotations, "logprobs": []})
        elif kind == "refusal":
            content.append({"type": "refusal", "refusal": part["refusal"]})
        elif kind == "image_file":
            ref = part["image_file"]
            content.append(
                {
                    "type": "input_image",
                    "image_url": None,
                    "file_id": ref["file_id"],
                    "detail": ref.get("detail") or "auto",
                }
            )
        elif kind == "image_url":
            ref = part["image_url"]
            content.append(
                {"type": "input_image", "image_url": ref["url"], "file_id": None, "detail": ref.get("detail") or "auto"}
            )
    return {
        "type": "message",
        "id": message["id"],
        "status": message["status"],
        "role": message["role"],
        "content": content,
    }


def apply_include(item: dict[str, Any], include: set[str]) -> dict[str, Any]:
    """Leave out what only `include[]` asks for: file search results, code interpreter outputs, reasoning's
    encrypted content, output text logprobs."""
    kind = item.get("type")
    if kind == "file_search_call" and "file_search_call.results" not in include:
        return {**item, "results": None}
    if kind == "code_interpreter_call" and "code_interpreter_call.outputs" not in include:
        return {**item, "outputs": None}
    if kind == "reasoning" and "reasoning.encrypted_content" not in include and "encrypted_content" in item:
        return {k: v for k, v in item.items() if k != "encrypted_content"}
    if kind == "message" and "message.output_text.logprobs" not in include:
        parts = item.get("content") or []
        if any(p.get("type") == "output_text" and p.get("logprobs") for p in parts):
            content = [{**p, "logprobs": []} if p.get("type") == "output_text" else p for p in parts]
            return {**item, "content": content}
    return item


def item_view(row: log.ItemRow, names: dict[str, str], include: set[str]) -> dict[str, Any]:
    """A row of the log as a conversation item."""
    if row.type == MESSAGE:
        if row.item is not None:
            item = {**row.item, "status": row.data.get("status", row.item.get("status"))}
        else:
            item = message_item(row.data, names)
    else:
        item = row.data
    return apply_include(item, include)


def item_views(conn: sa.Connection, rows: list[log.ItemRow], include: set[str]) -> list[dict[str, Any]]:
    names = filenames(conn, rows)
    return [item_view(r, names, include) for r in rows]
