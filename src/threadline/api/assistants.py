"""/v1/assistants"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ..services import assistants
from ..services.assistants import AssistantChanges, NewAssistant
from . import commands, models
from .common import ListParams, deleted, frees_storage, json, list_params, page_response, runtime, store
from .jsonbody import JSONRoute
from .resources import response_format_object, tool_object

router = APIRouter(prefix="/v1/assistants", tags=["assistants"], route_class=JSONRoute)


@router.post("")
def create_assistant(body: models.AssistantCreate, request: Request) -> Response:
    new = NewAssistant(
        model=body.model,
        name=body.name,
        description=body.description,
        instructions=body.instructions,
        tools=[tool_object(t) for t in body.tools or []],
        tool_resources=commands.tool_resources(body.tool_resources),
        metadata=body.metadata,
        temperature=body.temperature,
        top_p=body.top_p,
        response_format=response_format_object(body.response_format),
    )
    return json(assistants.create(runtime(request), new))


@router.get("")
def list_assistants(request: Request, params: ListParams = Depends(list_params)) -> Response:
    return page_response(assistants.list_assistants(store(request), params))


@router.get("/{assistant_id}")
def get_assistant(assistant_id: str, request: Request) -> Response:
    return json(assistants.get_raw(store(request), assistant_id))


@router.post("/{assistant_id}")
def modify_assistant(assistant_id: str, body: models.AssistantModify, request: Request) -> Response:
    fields = body.model_fields_set
    changes: AssistantChanges = {}
    for name in ("name", "description", "instructions", "model", "metadata", "temperature", "top_p"):
        if name in fields:
            changes[name] = getattr(body, name)  # type: ignore[literal-required]
    if "tools" in fields:
        changes["tools"] = [tool_object(t) for t in body.tools or []]
    if "response_format" in fields:
        changes["response_format"] = response_format_object(body.response_format)
    if "tool_resources" in fields:
        changes["tool_resources"] = commands.tool_resources(body.tool_resources)
    return json(assistants.modify(runtime(request), assistant_id, changes))


@router.delete("/{assistant_id}")
@frees_storage
def delete_assistant(assistant_id: str, request: Request) -> Response:
    assistants.delete(store(request), assistant_id)
    return deleted(assistant_id, "assistant.deleted")
