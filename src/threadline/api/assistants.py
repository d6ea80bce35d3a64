"""/v1/assistants"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ..ids import new_id
from ..store import now, schema
from . import models
from .common import ListParams, check_id, deleted, frees_storage, json, list_params, load, page_response, runtime, store
from .errors import not_found
from .jsonbody import JSONRoute
from .resources import response_format_object, tool_object, tool_resources_object

router = APIRouter(prefix="/v1/assistants", tags=["assistants"], route_class=JSONRoute)


@router.post("")
def create_assistant(body: models.AssistantCreate, request: Request) -> Response:
    rt = runtime(request)
    with rt.store.write() as conn:
        assistant_id = new_id("assistant")
        obj = {
            "id": assistant_id,
            "object": "assistant",
            "created_at": now(),
            "name": body.name,
            "description": body.description,
            "model": body.model,
            "instructions": body.instructions,
            "tools": [tool_object(t) for t in body.tools or []],
            "tool_resources": tool_resources_object(conn, rt, body.tool_resources, owner=assistant_id),
            "metadata": body.metadata or {},
            "top_p": 1.0 if body.top_p is None else body.top_p,
            "temperature": 1.0 if body.temperature is None else body.temperature,
            "response_format": response_format_object(body.response_format),
        }
        rt.store.insert(conn, schema.assistants, obj)
    return json(obj)


@router.get("")
def list_assistants(request: Request, params: ListParams = Depends(list_params)) -> Response:
    return page_response(store(request).page(schema.assistants, **params.__dict__))


@router.get("/{assistant_id}")
def get_assistant(assistant_id: str, request: Request) -> Response:
    check_id("assistant", assistant_id, "assistant_id")
    raw = store(request).get_raw(schema.assistants, assistant_id)
    if raw is None:
        raise not_found("assistant", assistant_id)
    return json(raw)


@router.post("/{assistant_id}")
def modify_assistant(assistant_id: str, body: models.AssistantModify, request: Request) -> Response:
    check_id("assistant", assistant_id, "assistant_id")
    rt = runtime(request)
    fields = body.model_fields_set
    with rt.store.write() as conn:
        obj = load(conn, schema.assistants, assistant_id, "assistant", lock=True)
        for name in ("name", "description", "instructions", "model"):
            if name in fields and (name != "model" or body.model is not None):
                obj[name] = getattr(body, name)
        if "tools" in fields:
            obj["tools"] = [tool_object(t) for t in body.tools or []]
        if "metadata" in fields:
            obj["metadata"] = body.metadata or {}
        if "temperature" in fields:
            obj["temperature"] = 1.0 if body.temperature is None else body.temperature
        if "top_p" in fields:
            obj["top_p"] = 1.0 if body.top_p is None else body.top_p
        if "response_format" in fields:
            obj["response_format"] = response_format_object(body.response_format)
        if "tool_resources" in fields:
            obj["tool_resources"] = tool_resources_object(
                conn, rt, body.tool_resources, owner=assistant_id, existing=obj.get("tool_resources")
            )
        rt.store.update(conn, schema.assistants, obj)
    return json(obj)


@router.delete("/{assistant_id}")
@frees_storage
def delete_assistant(assistant_id: str, request: Request) -> Response:
    check_id("assistant", assistant_id, "assistant_id")
    with store(request).write() as conn:
        if not store(request).delete(conn, schema.assistants, assistant_id):
            raise not_found("assistant", assistant_id)
    return deleted(assistant_id, "assistant.deleted")
