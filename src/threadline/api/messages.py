"""/v1/threads/{thread_id}/messages"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from ..store import schema
from ..store.sql import MESSAGE
from . import models
from .common import (
    ListParams,
    check_id,
    check_no_nul,
    deleted,
    frees_storage,
    json,
    list_params,
    load,
    page_response,
    runtime,
    store,
)
from .errors import bad_request, not_found
from .jsonbody import JSONRoute
from .resources import add_messages

router = APIRouter(prefix="/v1/threads/{thread_id}/messages", tags=["messages"], route_class=JSONRoute)


@router.post("")
def create_message(thread_id: str, body: models.MessageCreate, request: Request) -> Response:
    check_id("thread", thread_id, "thread_id")
    rt = runtime(request)
    with rt.store.write() as conn:
        thread = rt.store.lock_thread(conn, thread_id)
        if thread is None:
            raise not_found("thread", thread_id)
        active = rt.store.active_run_id(conn, thread_id)
        if active:
            raise bad_request(f"Can't add messages to {thread_id} while a run {active} is active.")
        (message,) = add_messages(conn, rt, thread, [body])
    return json(message)


@router.get("")
def list_messages(
    thread_id: str,
    request: Request,
    params: ListParams = Depends(list_params),
    run_id: str | None = Query(None),
) -> Response:
    check_id("thread", thread_id, "thread_id")
    check_no_nul("run_id", run_id)
    s = store(request)
    t = schema.messages
    where = (t.c.thread_id == thread_id) & (t.c.type == MESSAGE)
    if run_id:
        where = where & (t.c.run_id == run_id)
    with s.read() as conn:
        page = s.page(t, where=where, conn=conn, **params.__dict__)
        if not page.ids and not s.exists(conn, schema.threads, thread_id):
            raise not_found("thread", thread_id)
    return page_response(page)


def _load_message(conn, thread_id: str, message_id: str, lock: bool = False) -> dict:  # noqa: ANN001
    message = load(conn, schema.messages, message_id, "message", lock=lock)
    if message.get("object") != "thread.message" or message["thread_id"] != thread_id:  # conversation items
        raise not_found("message", message_id)
    return message


@router.get("/{message_id}")
def get_message(thread_id: str, message_id: str, request: Request) -> Response:
    check_id("thread", thread_id, "thread_id")
    check_id("message", message_id, "message_id")
    with store(request).read() as conn:
        return json(_load_message(conn, thread_id, message_id))


@router.post("/{message_id}")
def modify_message(thread_id: str, message_id: str, body: models.MessageModify, request: Request) -> Response:
    check_id("thread", thread_id, "thread_id")
    check_id("message", message_id, "message_id")
    s = store(request)
    with s.write() as conn:
        message = _load_message(conn, thread_id, message_id, lock=True)
        if "metadata" in body.model_fields_set:
            message["metadata"] = body.metadata or {}
        s.update(conn, schema.messages, message)
    return json(message)


@router.delete("/{message_id}")
@frees_storage
def delete_message(thread_id: str, message_id: str, request: Request) -> Response:
    check_id("thread", thread_id, "thread_id")
    check_id("message", message_id, "message_id")
    s = store(request)
    with s.write() as conn:
        _load_message(conn, thread_id, message_id)
        s.delete(conn, schema.messages, message_id)
    return deleted(message_id, "thread.message.deleted")
