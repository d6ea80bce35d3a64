"""/v1/threads/{thread_id}/messages"""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..services import messages
from ..services.messages import MessageChanges
from . import commands, models
from .common import (
    check_id,
    check_no_nul,
    deleted,
    frees_storage,
    json,
    list_params,
    page_response,
    runtime,
    short_read,
    store,
)
from .jsonbody import JSONRoute

router = APIRouter(prefix="/v1/threads/{thread_id}/messages", tags=["messages"], route_class=JSONRoute)


@router.post("")
async def create_message(thread_id: str, body: models.MessageCreate, request: Request) -> Response:
    rt = runtime(request)
    new = commands.new_message(body)
    return json(await rt.store.run_write(messages.create, rt, thread_id, new, offload=anyio.to_thread.run_sync))


@router.get("")
async def list_messages(thread_id: str, request: Request) -> Response:
    params = await list_params(request)  # called, not Depends(): FastAPI's dependency solving costs more
    check_id("thread", thread_id, "thread_id")  # before the query's checks, as the service checks it
    run_id = check_no_nul("run_id", request.query_params.get("run_id"))
    s = store(request)
    page = await short_read(request, lambda: messages.list_messages(s, thread_id, params, run_id=run_id))
    return page_response(page)


@router.get("/{message_id}")
async def get_message(thread_id: str, message_id: str, request: Request) -> Response:
    s = store(request)
    return json(await short_read(request, lambda: messages.get(s, thread_id, message_id)))


@router.post("/{message_id}")
def modify_message(thread_id: str, message_id: str, body: models.MessageModify, request: Request) -> Response:
    changes: MessageChanges = {}
    if "metadata" in body.model_fields_set:
        changes["metadata"] = body.metadata
    return json(messages.modify(store(request), thread_id, message_id, changes))


@router.delete("/{message_id}")
@frees_storage
def delete_message(thread_id: str, message_id: str, request: Request) -> Response:
    messages.delete(store(request), thread_id, message_id)
    return deleted(message_id, "thread.message.deleted")
