"""/v1/threads"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Body, Request
from fastapi.responses import Response

from ..ids import new_id
from ..store import now, schema
from . import models
from .common import check_id, deleted, frees_storage, json, load, runtime, store
from .errors import not_found
from .jsonbody import JSONRoute
from .resources import add_messages, tool_resources_object

router = APIRouter(prefix="/v1/threads", tags=["threads"], route_class=JSONRoute)


def create_thread_in_tx(
    conn: sa.Connection,
    rt: Any,
    body: models.ThreadCreate,
    extra_resources: models.ToolResourcesIds | None = None,
) -> dict[str, Any]:
    """Create a thread with its messages. `extra_resources` (create-thread-and-run's top-level tool_resources)
    are merged over the thread's own before the messages' attachments add their files."""
    thread_id = new_id("thread")
    ts = now()
    resources = tool_resources_object(conn, rt, body.tool_resources, owner=thread_id)
    if extra_resources is not None:
        resources = tool_resources_object(conn, rt, extra_resources, owner=thread_id, existing=resources)
    thread = {
        "id": thread_id,
        "object": "thread",
        "created_at": ts,
        "metadata": body.metadata or {},
        "tool_resources": resources,
    }
    rt.store.insert(conn, schema.threads, thread)
    add_messages(conn, rt, thread, body.messages or [], created_at=ts)
    return thread


@router.post("")
def create_thread(request: Request, body: models.ThreadCreate | None = Body(None)) -> Response:
    rt = runtime(request)
    with rt.store.write() as conn:
        thread = create_thread_in_tx(conn, rt, body or models.ThreadCreate())
    return json(thread)


@router.get("/{thread_id}")
def get_thread(thread_id: str, request: Request) -> Response:
    check_id("thread", thread_id, "thread_id")
    raw = store(request).get_raw(schema.threads, thread_id)
    if raw is None:
        raise not_found("thread", thread_id)
    return json(raw)


@router.post("/{thread_id}")
def modify_thread(thread_id: str, request: Request, body: models.ThreadModify | None = Body(None)) -> Response:
    check_id("thread", thread_id, "thread_id")
    rt = runtime(request)
    body = body or models.ThreadModify()
    with rt.store.write() as conn:
        thread = load(conn, schema.threads, thread_id, "thread", lock=True)
        if "metadata" in body.model_fields_set:
            thread["metadata"] = body.metadata or {}
        if "tool_resources" in body.model_fields_set:
            thread["tool_resources"] = tool_resources_object(
                conn, rt, body.tool_resources, owner=thread_id, existing=thread.get("tool_resources")
            )
        rt.store.update(conn, schema.threads, thread)
    return json(thread)


@router.delete("/{thread_id}")
@frees_storage
def delete_thread(thread_id: str, request: Request) -> Response:
    check_id("thread", thread_id, "thread_id")
    rt = runtime(request)
    with rt.store.write() as conn:
        if not rt.store.delete_thread(conn, thread_id):
            raise not_found("thread", thread_id)
    on_delete = getattr(rt, "on_thread_deleted", None)
    if on_delete is not None:
        on_delete(thread_id)
    return deleted(thread_id, "thread.deleted")
