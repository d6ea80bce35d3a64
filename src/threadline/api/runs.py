"""/v1/threads/{thread_id}/runs, /v1/threads/runs and run steps."""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from ..engine.objects import INCLUDE_FILE_SEARCH_CONTENT, strip_content
from ..services import runs as svc
from ..store import Store, loads, schema
from . import models
from .common import (
    ListParams,
    check_id,
    json,
    list_params,
    page_response,
    poll_headers,
    runtime,
    short_read,
    store,
)
from .errors import bad_request, not_found
from .jsonbody import JSONRoute
from .resources import add_messages, response_format_object, tool_object
from .threads import create_thread_in_tx

router = APIRouter(prefix="/v1/threads", tags=["runs"], route_class=JSONRoute)


def _include(request: Request) -> list[str]:
    values = request.query_params.getlist("include[]") + request.query_params.getlist("include")
    for value in values:
        if value != INCLUDE_FILE_SEARCH_CONTENT:
            raise bad_request(
                f"Invalid value: '{value}'. Supported values are: '{INCLUDE_FILE_SEARCH_CONTENT}'.",
                param="include",
                code="invalid_value",
            )
    return values


def _options(body: models.RunOptions, **extra: Any) -> svc.RunOptions:
    """The service's run options from a request body (tools, tool_choice, response_format and the truncation
    strategy in the run object's shapes)."""
    fields = body.model_fields_set
    tool_choice = body.tool_choice
    return svc.RunOptions(
        assistant_id=body.assistant_id,  # type: ignore[attr-defined]
        model=body.model,
        instructions=body.instructions,
        tools=[tool_object(t) for t in body.tools] if body.tools is not None else None,
        metadata=body.metadata,
        temperature=body.temperature,
        top_p=body.top_p,
        max_prompt_tokens=body.max_prompt_tokens,
        max_completion_tokens=body.max_completion_tokens,
        truncation_strategy=body.truncation_strategy.model_dump() if body.truncation_strategy else None,
        tool_choice=(
            tool_choice
            if tool_choice is None or isinstance(tool_choice, str)
            else tool_choice.model_dump(exclude_none=True)
        ),
        parallel_tool_calls=body.parallel_tool_calls,
        response_format=(
            response_format_object(body.response_format)
            if "response_format" in fields and body.response_format
            else None
        ),
        **extra,
    )


def _respond(request: Request, started: svc.Started) -> Response:
    if started.stream is None:
        return json(started.run, headers=poll_headers(request))
    return StreamingResponse(
        started.stream.sse(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post("/{thread_id}/runs")
async def create_run(thread_id: str, body: models.RunCreate, request: Request) -> Response:
    check_id("thread", thread_id, "thread_id")
    rt = runtime(request)
    opts = _options(body, additional_instructions=body.additional_instructions, include=_include(request))
    bodies = body.additional_messages or []

    def additional(conn: sa.Connection, thread: dict[str, Any], created_at: int) -> list[dict[str, Any]]:
        return add_messages(conn, rt, thread, bodies, created_at=created_at)

    started = await svc.create_run(rt, thread_id, opts, stream=bool(body.stream), add_messages=additional)
    return _respond(request, started)


@router.post("/runs")
async def create_thread_and_run(body: models.ThreadAndRunCreate, request: Request) -> Response:
    rt = runtime(request)
    thread_body = body.thread or models.ThreadCreate()

    def create_thread(conn: sa.Connection) -> dict[str, Any]:
        return create_thread_in_tx(conn, rt, thread_body, body.tool_resources)

    started = await svc.create_thread_and_run(rt, _options(body), stream=bool(body.stream), create_thread=create_thread)
    return _respond(request, started)


@router.get("/{thread_id}/runs")
def list_runs(thread_id: str, request: Request, params: ListParams = Depends(list_params)) -> Response:
    check_id("thread", thread_id, "thread_id")
    s = store(request)
    with s.read() as conn:
        if not s.exists(conn, schema.threads, thread_id):
            raise not_found("thread", thread_id)
        page = s.page(schema.runs, where=schema.runs.c.thread_id == thread_id, conn=conn, **params.__dict__)
    return page_response(page)


@router.get("/{thread_id}/runs/{run_id}")
async def get_run(thread_id: str, run_id: str, request: Request) -> Response:
    def read() -> dict[str, Any]:
        with store(request).read() as conn:
            return svc.load_run(conn, thread_id, run_id)

    return json(await short_read(request, read), headers=poll_headers(request))


@router.post("/{thread_id}/runs/{run_id}")
def modify_run(thread_id: str, run_id: str, body: models.RunModify, request: Request) -> Response:
    set_metadata = "metadata" in body.model_fields_set
    run = svc.modify_run(runtime(request), thread_id, run_id, body.metadata, set_metadata=set_metadata)
    return json(run, headers=poll_headers(request))


@router.post("/{thread_id}/runs/{run_id}/cancel")
def cancel_run(thread_id: str, run_id: str, request: Request) -> Response:
    run = svc.cancel_run(runtime(request), thread_id, run_id)
    return json(run, headers=poll_headers(request))


@router.post("/{thread_id}/runs/{run_id}/submit_tool_outputs")
async def submit_tool_outputs(
    thread_id: str, run_id: str, body: models.SubmitToolOutputs, request: Request
) -> Response:
    outputs = [(o.tool_call_id, o.output) for o in body.tool_outputs]
    started = await svc.submit_tool_outputs(runtime(request), thread_id, run_id, outputs, stream=bool(body.stream))
    return _respond(request, started)


@router.get("/{thread_id}/runs/{run_id}/steps")
def list_steps(thread_id: str, run_id: str, request: Request, params: ListParams = Depends(list_params)) -> Response:
    include = _include(request)
    s = store(request)
    with s.read() as conn:
        svc.load_run(conn, thread_id, run_id)
        page = s.page(schema.run_steps, where=schema.run_steps.c.run_id == run_id, conn=conn, **params.__dict__)
    if '"file_search"' in "".join(page.items):
        page.items = [orjson.dumps(strip_content(loads(i), include)).decode() for i in page.items]
    return page_response(page)


@router.get("/{thread_id}/runs/{run_id}/steps/{step_id}")
def get_step(thread_id: str, run_id: str, step_id: str, request: Request) -> Response:
    include = _include(request)
    check_id("step", step_id, "step_id")
    with store(request).read() as conn:
        svc.load_run(conn, thread_id, run_id)
        step = Store.fetch(conn, schema.run_steps, step_id)
    if step is None or step["run_id"] != run_id:
        raise not_found("run step", step_id)
    return json(strip_content(step, include))
