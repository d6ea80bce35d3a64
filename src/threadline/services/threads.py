"""Threads: creation (with messages and tool_resources), reading, modifying and deletion (which ends the thread's
sandbox session)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, TypedDict

import sqlalchemy as sa

from ..ids import new_id
from ..store import now
from ..store import threads as repo
from . import messages, tool_resources
from .deps import Deps
from .errors import NotFound, check_id
from .messages import NewMessage
from .tool_resources import ToolResources


@dataclass
class NewThread:
    messages: list[NewMessage] = field(default_factory=list)
    tool_resources: ToolResources | None = None
    metadata: dict[str, str] | None = None


class ThreadChanges(TypedDict, total=False):
    """The fields a modify request sent."""

    metadata: dict[str, str] | None
    tool_resources: ToolResources | None


def create(
    deps: Deps,
    new: NewThread,
    *,
    extra_resources: ToolResources | None = None,
    conn: sa.Connection | None = None,
) -> dict[str, Any]:
    """Create a thread with its messages, in `conn`'s transaction when given (create-thread-and-run) or in a new one.

    `extra_resources` (create-thread-and-run's top-level tool_resources) are merged over the thread's own before the
    messages' attachments add their files. Raises Invalid / NotFound for a referenced file or vector store."""
    if conn is None:
        with deps.store.write() as conn:
            return create(deps, new, extra_resources=extra_resources, conn=conn)
    thread_id = new_id("thread")
    ts = now()
    resources = tool_resources.resolve(deps, conn, new.tool_resources, owner=thread_id)
    if extra_resources is not None:
        resources = tool_resources.resolve(deps, conn, extra_resources, owner=thread_id, existing=resources)
    thread = {
        "id": thread_id,
        "object": "thread",
        "created_at": ts,
        "metadata": new.metadata or {},
        "tool_resources": resources,
    }
    repo.insert(conn, thread)
    messages.add(deps, conn, thread, new.messages, created_at=ts)
    return thread


def get_raw(deps: Deps, thread_id: str) -> str:
    """The stored thread as JSON text; raises Invalid / NotFound."""
    check_id("thread", thread_id, "thread_id")
    with deps.store.read() as conn:
        raw = repo.get_raw(conn, thread_id)
    if raw is None:
        raise NotFound("thread", thread_id)
    return raw


def modify(deps: Deps, thread_id: str, changes: ThreadChanges) -> dict[str, Any]:
    """Apply a modify request's fields; tool_resources are checked and replace the thread's per tool."""
    check_id("thread", thread_id, "thread_id")
    with deps.store.write() as conn:
        thread = repo.get(conn, thread_id, lock=True)
        if thread is None:
            raise NotFound("thread", thread_id)
        if "metadata" in changes:
            thread["metadata"] = changes["metadata"] or {}
        if "tool_resources" in changes:
            thread["tool_resources"] = tool_resources.resolve(
                deps, conn, changes["tool_resources"], owner=thread_id, existing=thread.get("tool_resources")
            )
        repo.update(conn, thread)
    return thread


def delete(deps: Deps, thread_id: str) -> None:
    """Delete a thread with its messages, runs and steps, then end its sandbox session. Raises Invalid / NotFound."""
    check_id("thread", thread_id, "thread_id")
    with deps.store.write() as conn:
        if not repo.delete(conn, thread_id):
            raise NotFound("thread", thread_id)
    end_sandbox_session(deps, thread_id)


def end_sandbox_session(deps: Deps, thread_id: str) -> None:
    """End the thread's code_interpreter session (if any). Called from a request's worker thread: the session is
    closed on the server's event loop, without waiting."""
    if deps.loop is not None:
        asyncio.run_coroutine_threadsafe(deps.sandbox.close_session(thread_id), deps.loop)
