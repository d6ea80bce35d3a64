"""Messages of a thread: adding user-supplied messages (the one path for every way of adding them), reading,
changing metadata and deleting."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypedDict

import sqlalchemy as sa

from ..ids import new_id
from ..store import Page, Store, now
from ..store import messages as repo
from ..store import threads as thread_repo
from ..store.sql import ListParams
from . import files, vector_stores
from .deps import Deps
from .errors import NotFound, ThreadLocked, check_id


@dataclass
class Attachment:
    """A file attached to a message for the tools named in `tools` ("code_interpreter", "file_search")."""

    file_id: str
    tools: list[str] = field(default_factory=list)


@dataclass
class NewMessage:
    """A message to add. `content` is a string or the request's content parts: `{"type": "text", "text": str}`,
    `{"type": "image_file", "image_file": {"file_id", "detail"?}}`, `{"type": "image_url", "image_url": {"url",
    "detail"?}}`."""

    role: str
    content: str | list[dict[str, Any]]
    attachments: list[Attachment] | None = None
    metadata: dict[str, Any] | None = None


class MessageChanges(TypedDict, total=False):
    """The fields a modify request sent."""

    metadata: dict[str, str] | None


def content_parts(conn: sa.Connection, content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stored content of a message; image files must exist (Invalid / NotFound naming `content[i]...`)."""
    if isinstance(content, str):
        return [{"type": "text", "text": {"value": content, "annotations": []}}]
    parts: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        if part["type"] == "text":
            parts.append({"type": "text", "text": {"value": part["text"], "annotations": []}})
        elif part["type"] == "image_file":
            ref = part["image_file"]
            files.require(conn, ref["file_id"], f"content[{i}].image_file.file_id")
            parts.append(
                {"type": "image_file", "image_file": {"file_id": ref["file_id"], "detail": ref.get("detail") or "auto"}}
            )
        else:
            ref = part["image_url"]
            parts.append({"type": "image_url", "image_url": {"url": ref["url"], "detail": ref.get("detail") or "auto"}})
    return parts


def message_object(
    conn: sa.Connection,
    thread_id: str,
    new: NewMessage,
    *,
    created_at: int | None = None,
    run_id: str | None = None,
    assistant_id: str | None = None,
) -> dict[str, Any]:
    """The stored object of a new completed message (attachments are checked first, then content)."""
    ts = created_at or now()
    attachments = []
    for i, att in enumerate(new.attachments or []):
        files.require(conn, att.file_id, f"attachments[{i}].file_id")
        attachments.append({"file_id": att.file_id, "tools": [{"type": t} for t in att.tools]})
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
        "role": new.role,
        "content": content_parts(conn, new.content),
        "attachments": attachments,
        "metadata": new.metadata or {},
    }


def apply_attachments(deps: Deps, conn: sa.Connection, thread: dict[str, Any], message: dict[str, Any]) -> bool:
    """Attachments add files to the thread's tool_resources: code_interpreter files to its list, file_search files to
    the thread's own vector store (created on demand). Returns True when the thread object changed."""
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
            vector_stores.attach_to_thread(deps, conn, thread, att["file_id"])
            changed = True
    return changed


def add(
    deps: Deps,
    conn: sa.Connection,
    thread: dict[str, Any],
    messages: list[NewMessage],
    *,
    created_at: int | None = None,
) -> list[dict[str, Any]]:
    """Add user-supplied messages to a stored thread inside the caller's write transaction: the one path for
    messages.create, threads.create(messages=...), create-thread-and-run's thread.messages and a run's
    additional_messages. Validates each message, stores it, and applies its attachments to the thread's
    tool_resources (saving the thread when they changed it). Returns the stored messages in order.

    Does not check the thread lock (callers that need it use `create` or check it themselves). Raises Invalid /
    NotFound for a bad content part or attachment; the caller's transaction then rolls back."""
    changed = False
    out = []
    for new in messages:
        message = message_object(conn, thread["id"], new, created_at=created_at)
        changed = apply_attachments(deps, conn, thread, message) or changed
        repo.insert(conn, message)
        out.append(message)
    if changed:
        thread_repo.update(conn, thread)
    return out


def create(deps: Deps, thread_id: str, new: NewMessage) -> dict[str, Any]:
    """messages.create: add one message to a thread with no active run. Raises Invalid / NotFound, ThreadLocked."""
    check_id("thread", thread_id, "thread_id")
    with deps.store.write() as conn:
        thread = thread_repo.get(conn, thread_id, lock=True)
        if thread is None:
            raise NotFound("thread", thread_id)
        active = Store.active_run_id(conn, thread_id)
        if active:
            raise ThreadLocked(f"Can't add messages to {thread_id} while a run {active} is active.")
        (message,) = add(deps, conn, thread, [new])
    return message


def list_messages(store: Store, thread_id: str, params: ListParams, *, run_id: str | None = None) -> Page:
    """A page of the thread's messages (those a run created, with `run_id`)."""
    check_id("thread", thread_id, "thread_id")
    with store.read() as conn:
        page = repo.page(store, conn, thread_id, params, run_id=run_id)
        if not page.ids and not thread_repo.exists(conn, thread_id):
            raise NotFound("thread", thread_id)
    return page


def _load(conn: sa.Connection, thread_id: str, message_id: str, *, lock: bool = False) -> dict[str, Any]:
    message = repo.get(conn, message_id, lock=lock)
    # other rows of the thread's log are conversation items, not Assistants messages
    if message is None or message.get("object") != "thread.message" or message["thread_id"] != thread_id:
        raise NotFound("message", message_id)
    return message


def _check_ids(thread_id: str, message_id: str) -> None:
    check_id("thread", thread_id, "thread_id")
    check_id("message", message_id, "message_id")


def get(store: Store, thread_id: str, message_id: str) -> dict[str, Any]:
    _check_ids(thread_id, message_id)
    with store.read() as conn:
        return _load(conn, thread_id, message_id)


def modify(store: Store, thread_id: str, message_id: str, changes: MessageChanges) -> dict[str, Any]:
    """Apply a modify request's fields (only `metadata`; None empties it) and save the message."""
    _check_ids(thread_id, message_id)
    with store.write() as conn:
        message = _load(conn, thread_id, message_id, lock=True)
        if "metadata" in changes:
            message["metadata"] = changes["metadata"] or {}
        repo.update(conn, message)
    return message


def delete(store: Store, thread_id: str, message_id: str) -> None:
    _check_ids(thread_id, message_id)
    with store.write() as conn:
        _load(conn, thread_id, message_id)
        repo.delete(conn, message_id)
