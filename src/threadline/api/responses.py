"""/v1/responses: stored responses (retrieve, delete, input items) and input token counts.

`POST /v1/responses` (creating and executing a response) is registered by the execution work; its request model is
api/response_models.ResponseCreate.
"""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import Response

from ..ids import PREFIXES, has_prefix
from ..services import response_models as rm
from ..services import responses as svc
from ..store import responses as table
from .common import ListParams, frees_storage, json, store
from .conversations import include_param, item_list_params
from .errors import bad_request, invalid_id
from .jsonbody import JSONRoute

router = APIRouter(prefix="/v1/responses", tags=["responses"], route_class=JSONRoute)


def check_response_id(value: str) -> str:
    if not has_prefix("response", value) or "\x00" in value:
        raise invalid_id("response_id", value, PREFIXES["response"])
    return value


@router.post("/input_tokens")
def count_input_tokens(request: Request, body: rm.InputTokensRequest | None = Body(None)) -> Response:
    with store(request).read() as conn:
        tokens = svc.input_tokens(conn, body or rm.InputTokensRequest())
    return json({"object": "response.input_tokens", "input_tokens": tokens})


@router.get("/{response_id}")
def get_response(response_id: str, request: Request) -> Response:
    check_response_id(response_id)
    include = include_param(request)
    if request.query_params.get("stream", "false").lower() not in ("false", "0", ""):
        # Replaying a response's events needs its stored stream, which only executed responses have.
        raise bad_request(
            "Invalid value for 'stream': this response has no stored event stream to replay (only background "
            "responses keep one).",
            param="stream",
            code="invalid_value",
        )
    with store(request).read() as conn:
        response = svc.load_stored(conn, response_id)
    return json(svc.with_include(response, include))


@router.delete("/{response_id}")
@frees_storage
def delete_response(response_id: str, request: Request) -> Response:
    check_response_id(response_id)
    s = store(request)
    with s.write() as conn:
        svc.load_stored(conn, response_id)
        table.delete(conn, response_id)
    return json({"id": response_id, "object": "response", "deleted": True})


@router.get("/{response_id}/input_items")
def list_input_items(response_id: str, request: Request, params: ListParams = Depends(item_list_params)) -> Response:
    check_response_id(response_id)
    include = include_param(request)
    with store(request).read() as conn:
        data, has_more = svc.input_item_page(
            conn, response_id, limit=params.limit, order=params.order, after=params.after, include=include
        )
    return json(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": has_more,
        }
    )
