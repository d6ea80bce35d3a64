"""/v1/threads"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from fastapi import APIRouter, Body, Request
from fastapi.responses import Response

from ..services import threads
from ..services.deps import Deps
from ..services.threads import ThreadChanges
from . import commands, models
from .common import deleted, frees_storage, json, runtime
from .jsonbody import JSONRoute

if TYPE_CHECKING:
    from ..services.deps import Deps

router = APIRouter(prefix="/v1/threads", tags=["threads"], route_class=JSONRoute)


def create_thread_in_tx(
    conn: sa.Connection,
    rt: Deps,
    body: models.ThreadCreate,
    extra_resources: models.ToolResourcesIds | None = None,
) -> dict[str, Any]:
    """services.threads.create for request models, in `conn`'s transaction (create-thread-and-run)."""
    extra = commands.tool_resources(extra_resources)
    return threads.create(rt, commands.new_thread(body), extra_resources=extra, conn=conn)


@router.post("")
def create_thread(request: Request, body: models.ThreadCreate | None = Body(None)) -> Response:
    return json(threads.create(runtime(request), commands.new_thread(body or models.ThreadCreate())))


@router.get("/{thread_id}")
def get_thread(thread_id: str, request: Request) -> Response:
    return json(threads.get_raw(runtime(request), thread_id))


@router.post("/{thread_id}")
def modify_thread(thread_id: str, request: Request, body: models.ThreadModify | None = Body(None)) -> Response:
    body = body or models.ThreadModify()
    changes: ThreadChanges = {}
    if "metadata" in body.model_fields_set:
        changes["metadata"] = body.metadata
    if "tool_resources" in body.model_fields_set:
        changes["tool_resources"] = commands.tool_resources(body.tool_resources)
    return json(threads.modify(runtime(request), thread_id, changes))


@router.delete("/{thread_id}")
@frees_storage
def delete_thread(thread_id: str, request: Request) -> Response:
    threads.delete(runtime(request), thread_id)
    return deleted(thread_id, "thread.deleted")
