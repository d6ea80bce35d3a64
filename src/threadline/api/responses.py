"""/v1/responses: create (sync, streamed, background), retrieve (and replay a background response's stream),
cancel, delete, input items, and input token counts."""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import Response, StreamingResponse

from ..ids import PREFIXES, has_prefix
from ..services import response_compact as compaction
from ..services import response_create as create
from ..services import response_models as rm
from ..services import responses as svc
from ..store import response_events
from ..store import responses as table
from .common import ListParams, frees_storage, json, list_response, runtime, store
from .conversations import include_param, item_list_params
from .errors import bad_request, invalid_id
from .jsonbody import JSONRoute

router = APIRouter(prefix="/v1/responses", tags=["responses"], route_class=JSONRoute)


def check_response_id(value: str) -> str:
    if not has_prefix("response", value) or "\x00" in value:
        raise invalid_id("response_id", value, PREFIXES["response"])
    return value


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.post("")
async def create_response(request: Request, body: rm.ResponseCreate) -> Response:
    created = await create.create_response(runtime(request), body)
    if created.stream is not None:
        return StreamingResponse(created.stream, media_type="text/event-stream", headers=SSE_HEADERS)
    if created.execution is None:  # background: queued
        return json(created.response)
    return json(await create.finish_sync(created))


def _starting_after(request: Request) -> int:
    raw = request.query_params.get("starting_after")
    if raw is None:
        return -1
    try:
        value = int(raw)
    except ValueError:
        value = -2
    if value < -1 or value > 2**31:
        raise bad_request(
            f"Invalid 'starting_after': expected a non-negative integer, got '{raw[:64]}'.",
            param="starting_after",
            code="invalid_value",
        )
    return value


@router.post("/compact")
async def compact_response(request: Request, body: compaction.CompactRequest) -> Response:
    return json(await compaction.compact(runtime(request), body))


@router.post("/{response_id}/cancel")
def cancel_response(response_id: str, request: Request) -> Response:
    check_response_id(response_id)
    return json(create.cancel_response(runtime(request), response_id))


@router.post("/input_tokens")
def count_input_tokens(request: Request, body: rm.InputTokensRequest | None = Body(None)) -> Response:
    with store(request).read() as conn:
        tokens = svc.input_tokens(conn, body or rm.InputTokensRequest())
    return json({"object": "response.input_tokens", "input_tokens": tokens})


@router.get("/{response_id}")
async def get_response(response_id: str, request: Request) -> Response:
    check_response_id(response_id)
    include = include_param(request)
    if request.query_params.get("stream", "false").lower() not in ("false", "0", ""):
        # A background response's recorded events, from `starting_after` on (then live until it ends).
        starting_after = _starting_after(request)
        rt = runtime(request)
        await anyio.to_thread.run_sync(create.check_replayable, rt, response_id)
        stream = create.replay(rt, response_id, starting_after)
        return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)

    def load() -> dict:
        with store(request).read() as conn:
            return svc.load_stored(conn, response_id)

    return json(svc.with_include(await anyio.to_thread.run_sync(load), include))


@router.delete("/{response_id}")
@frees_storage
def delete_response(response_id: str, request: Request) -> Response:
    check_response_id(response_id)
    s = store(request)
    with s.write() as conn:
        svc.load_stored(conn, response_id)
        table.delete(conn, response_id)
        response_events.delete(conn, response_id)
    return json({"id": response_id, "object": "response", "deleted": True})


@router.get("/{response_id}/input_items")
def list_input_items(response_id: str, request: Request, params: ListParams = Depends(item_list_params)) -> Response:
    check_response_id(response_id)
    include = include_param(request)
    with store(request).read() as conn:
        data, has_more = svc.input_item_page(
            conn, response_id, limit=params.limit, order=params.order, after=params.after, include=include
        )
    return list_response(data, has_more)
