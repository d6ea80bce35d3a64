"""/v1/conversations: the Conversations API over the threads store (a conversation is a thread; its items are the
thread's messages and tool activity). Conversion rules are in services/conversations.py."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import Response

from ..ids import PREFIXES, THREAD_PREFIXES, thread_row_id
from ..services import conversations as svc
from ..services import response_models as rm
from ..store import Store, schema
from ..store import items as log
from ..store import threads as threads_repo
from .common import ListParams, _list_params, frees_storage, json, runtime, store
from .errors import bad_request, invalid_id
from .jsonbody import JSONRoute

router = APIRouter(prefix="/v1/conversations", tags=["conversations"], route_class=JSONRoute)


def thread_id_of(value: str, param: str = "conversation_id") -> str:
    """The threads row of a conversation id (`conv_X`, or the same thread's `thread_X`); 400 for anything else."""
    if not value.startswith(THREAD_PREFIXES) or value in THREAD_PREFIXES or len(value) > 128 or "\x00" in value:
        raise invalid_id(param, value, PREFIXES["conversation"])
    return thread_row_id(value)


def check_item_id(value: str) -> str:
    if not value or len(value) > 128 or "\x00" in value:
        raise bad_request(
            f"Invalid 'item_id': '{value[:200]}'. Expected an ID that contains letters, numbers, underscores, or "
            "dashes.",
            param="item_id",
        )
    return value


def include_param(request: Request) -> set[str]:
    """`include[]` (the SDKs' form) or `include`: values of the spec's IncludeEnum."""
    values = request.query_params.getlist("include[]") + request.query_params.getlist("include")
    for value in values:
        if value not in rm.INCLUDABLE:
            supported = ", ".join(f"'{v}'" for v in rm.INCLUDABLE)
            raise bad_request(
                f"Invalid value: '{value}'. Supported values are: {supported}.", param="include", code="invalid_value"
            )
    return set(values)


async def item_list_params(request: Request) -> ListParams:
    """limit (1-100, 20), order (default desc), after; these lists have no `before`."""
    q = request.query_params
    return _list_params(q.get("limit"), q.get("order"), q.get("after"), None, 100, 20)


def _load_thread(conn: Any, value: str, thread_id: str, *, lock: bool = False) -> dict[str, Any]:
    thread = Store.fetch(conn, schema.threads, thread_id, lock=lock)
    if thread is None:
        raise svc.conversation_not_found(value)
    return thread


def _list_body(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


@router.post("")
def create_conversation(request: Request, body: rm.ConversationCreate | None = Body(None)) -> Response:
    rt = runtime(request)
    body = body or rm.ConversationCreate()
    with rt.store.write() as conn:
        thread = svc.new_thread(conn, body.metadata)
        svc.add_items(conn, thread["id"], body.items or [])
    return json(svc.conversation_object(thread))


@router.get("/{conversation_id}")
def get_conversation(conversation_id: str, request: Request) -> Response:
    thread_id = thread_id_of(conversation_id)
    with store(request).read() as conn:
        return json(svc.conversation_object(_load_thread(conn, conversation_id, thread_id)))


@router.post("/{conversation_id}")
def update_conversation(conversation_id: str, body: rm.ConversationUpdate, request: Request) -> Response:
    thread_id = thread_id_of(conversation_id)
    s = store(request)
    with s.write() as conn:
        thread = _load_thread(conn, conversation_id, thread_id, lock=True)
        thread["metadata"] = body.metadata or {}
        s.update(conn, schema.threads, thread)
    return json(svc.conversation_object(thread))


@router.delete("/{conversation_id}")
@frees_storage
def delete_conversation(conversation_id: str, request: Request) -> Response:
    """Deletes the thread row with its items, runs and steps, as DELETE /v1/threads/{id} does (one row, one
    policy; see docs/migration.md). Responses that used the conversation keep their own input and output."""
    thread_id = thread_id_of(conversation_id)
    rt = runtime(request)
    with rt.store.write() as conn:
        if not threads_repo.delete(conn, thread_id):
            raise svc.conversation_not_found(conversation_id)
    on_delete = getattr(rt, "on_thread_deleted", None)
    if on_delete is not None:
        on_delete(thread_id)
    conv_id = svc.conversation_object({"id": thread_id, "created_at": 0})["id"]
    return json({"id": conv_id, "object": "conversation.deleted", "deleted": True})


@router.post("/{conversation_id}/items")
def create_items(conversation_id: str, body: rm.ConversationItemsCreate, request: Request) -> Response:
    thread_id = thread_id_of(conversation_id)
    include = include_param(request)
    rt = runtime(request)
    with rt.store.write() as conn:
        _load_thread(conn, conversation_id, thread_id, lock=True)
        if log.active_execution(conn, thread_id):
            raise svc.locked_error()
        rows = svc.add_items(conn, thread_id, body.items)
        data = svc.item_views(conn, rows, include)
    return json(_list_body(data, False))


@router.get("/{conversation_id}/items")
def list_items(conversation_id: str, request: Request, params: ListParams = Depends(item_list_params)) -> Response:
    thread_id = thread_id_of(conversation_id)
    include = include_param(request)
    with store(request).read() as conn:
        _load_thread(conn, conversation_id, thread_id)
        rows, has_more = log.page(conn, thread_id, limit=params.limit, order=params.order, after=params.after)
        data = svc.item_views(conn, rows, include)
    return json(_list_body(data, has_more))


@router.get("/{conversation_id}/items/{item_id}")
def get_item(conversation_id: str, item_id: str, request: Request) -> Response:
    thread_id = thread_id_of(conversation_id)
    check_item_id(item_id)
    include = include_param(request)
    with store(request).read() as conn:
        _load_thread(conn, conversation_id, thread_id)
        row = log.get(conn, thread_id, item_id)
        if row is None:
            raise svc.item_not_found(item_id)
        (item,) = svc.item_views(conn, [row], include)
    return json(item)


@router.delete("/{conversation_id}/items/{item_id}")
@frees_storage
def delete_item(conversation_id: str, item_id: str, request: Request) -> Response:
    """Returns the conversation, not a deleted stub (spec)."""
    thread_id = thread_id_of(conversation_id)
    check_item_id(item_id)
    s = store(request)
    with s.write() as conn:
        thread = _load_thread(conn, conversation_id, thread_id)
        if not log.delete(conn, thread_id, item_id):
            raise svc.item_not_found(item_id)
    return json(svc.conversation_object(thread))
