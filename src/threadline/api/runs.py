"""/v1/threads/{thread_id}/runs, /v1/threads/runs and run steps."""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from .. import metrics
from ..engine.events import EventSink
from ..engine.executor import close_messages, close_steps
from ..engine.objects import INCLUDE_FILE_SEARCH_CONTENT, run_object, strip_content
from ..store import Store, dumps, loads, now, schema
from . import models
from .common import ListParams, check_id, json, list_params, load, page_response, poll_headers, runtime, store
from .errors import bad_request, not_found
from .jsonbody import JSONRoute
from .resources import add_messages, response_format_object, tool_object
from .threads import create_thread_in_tx

router = APIRouter(prefix="/v1/threads", tags=["runs"], route_class=JSONRoute)

JSON_SCHEMA_TOOLS = (
    "Invalid tools: all tools must be of type `function` when `response_format` is of type `json_schema`."
)


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


def _new_run(
    conn: sa.Connection, rt: Any, thread_id: str, body: models.RunOptions, extra_instructions: str | None
) -> dict[str, Any]:
    assistant_id = check_id("assistant", body.assistant_id, "assistant_id")  # type: ignore[attr-defined]
    assistant = load(conn, schema.assistants, assistant_id, "assistant")
    active = rt.store.active_run_id(conn, thread_id)
    if active:
        raise bad_request(f"Thread {thread_id} already has an active run {active}.")
    fields = body.model_fields_set
    tools = [tool_object(t) for t in body.tools] if body.tools is not None else assistant["tools"]
    response_format = (
        response_format_object(body.response_format)
        if "response_format" in fields and body.response_format
        else assistant.get("response_format", "auto")
    )
    is_schema = isinstance(response_format, dict) and response_format.get("type") == "json_schema"
    if is_schema and any(t["type"] != "function" for t in tools):
        raise bad_request(JSON_SCHEMA_TOOLS, param="response_format")
    tool_choice: Any = "auto"
    if body.tool_choice is not None:
        tool_choice = (
            body.tool_choice if isinstance(body.tool_choice, str) else body.tool_choice.model_dump(exclude_none=True)
        )
        if isinstance(tool_choice, dict):
            kind = tool_choice["type"]
            if kind == "function":
                name = tool_choice["function"]["name"]
                if not any(t["type"] == "function" and t["function"]["name"] == name for t in tools):
                    raise bad_request(
                        f"Invalid 'tool_choice': no function named '{name}' among the run's tools.", param="tool_choice"
                    )
            elif not any(t["type"] == kind for t in tools):
                raise bad_request(f"Invalid 'tool_choice': the run has no '{kind}' tool.", param="tool_choice")
    instructions = body.instructions if body.instructions is not None else (assistant.get("instructions") or "")
    if extra_instructions:
        instructions = f"{instructions}\n{extra_instructions}" if instructions else extra_instructions
    truncation = (
        body.truncation_strategy.model_dump() if body.truncation_strategy else {"type": "auto", "last_messages": None}
    )
    return run_object(
        thread_id=thread_id,
        assistant=assistant,
        model=body.model or assistant["model"],
        instructions=instructions,
        tools=tools,
        metadata=body.metadata or {},
        temperature=body.temperature if body.temperature is not None else assistant.get("temperature"),
        top_p=body.top_p if body.top_p is not None else assistant.get("top_p"),
        max_prompt_tokens=body.max_prompt_tokens,
        max_completion_tokens=body.max_completion_tokens,
        truncation_strategy=truncation,
        tool_choice=tool_choice,
        parallel_tool_calls=True if body.parallel_tool_calls is None else body.parallel_tool_calls,
        response_format=response_format,
        expires_after_s=rt.settings.run_expires_after_s,
    )


def _insert_run(conn: sa.Connection, rt: Any, run: dict[str, Any], include: list[str]) -> None:
    rt.store.insert(
        conn,
        schema.runs,
        run,
        thread_id=run["thread_id"],
        assistant_id=run["assistant_id"],
        status=run["status"],
        expires_at=run["expires_at"],
        state=orjson.dumps({"include": include}).decode(),
    )


def _stream_job(request: Request, stream: bool | None) -> Any:
    """For a streamed request: the execution that starts the run inside the request's own transaction."""
    return runtime(request).executor.job(EventSink()) if stream else None


def _start_in(conn: sa.Connection, rt: Any, run: dict[str, Any], job: Any) -> dict[str, Any]:
    """Start a run executed at once (`job` given) in the transaction that queued it, or tell the run queue of it
    (`job` None: a background run). Returns the run as queued, which is what the thread.run.created / .queued
    events report (thread.run.in_progress follows them)."""
    if job is None:
        rt.queue.queued_in(conn, ("run", run["id"]))
        return run
    queued = loads(dumps(run))
    job.start_in(conn, run)
    return queued


async def _start(
    request: Request, run: dict[str, Any], stream: bool, before: list[tuple[str, Any]], job: Any = None
) -> Response:
    rt = runtime(request)
    if not stream:
        await rt.queue.put(("run", run["id"]))
        return json(run, headers=poll_headers(request))
    sink = job.sink if job is not None else EventSink()
    for event, data in before:
        sink.emit(event, data)
    rt.workers.spawn(rt.executor.execute(run["id"], sink, job))
    return StreamingResponse(
        sink.sse(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post("/{thread_id}/runs")
async def create_run(thread_id: str, body: models.RunCreate, request: Request) -> Response:
    check_id("thread", thread_id, "thread_id")
    rt = runtime(request)
    include = _include(request)
    job = _stream_job(request, body.stream)

    def create() -> tuple[dict, list[dict]]:
        with rt.store.write() as conn:
            thread = rt.store.lock_thread(conn, thread_id)
            if thread is None:
                raise not_found("thread", thread_id)
            run = _new_run(conn, rt, thread_id, body, body.additional_instructions)
            added = add_messages(conn, rt, thread, body.additional_messages or [], created_at=run["created_at"])
            _insert_run(conn, rt, run, include)
            return _start_in(conn, rt, run, job), added

    run, _ = await run_in_threadpool(create)
    events = [("thread.run.created", run), ("thread.run.queued", run)]
    return await _start(request, run, bool(body.stream), events, job)


@router.post("/runs")
async def create_thread_and_run(body: models.ThreadAndRunCreate, request: Request) -> Response:
    rt = runtime(request)
    job = _stream_job(request, body.stream)

    def create() -> tuple[dict, dict]:
        with rt.store.write() as conn:
            thread_body = body.thread or models.ThreadCreate()
            thread = create_thread_in_tx(conn, rt, thread_body, body.tool_resources)
            run = _new_run(conn, rt, thread["id"], body, None)
            _insert_run(conn, rt, run, [])
            return thread, _start_in(conn, rt, run, job)

    thread, run = await run_in_threadpool(create)
    events = [("thread.created", thread), ("thread.run.created", run), ("thread.run.queued", run)]
    return await _start(request, run, bool(body.stream), events, job)


@router.get("/{thread_id}/runs")
def list_runs(thread_id: str, request: Request, params: ListParams = Depends(list_params)) -> Response:
    check_id("thread", thread_id, "thread_id")
    s = store(request)
    with s.read() as conn:
        if not s.exists(conn, schema.threads, thread_id):
            raise not_found("thread", thread_id)
        page = s.page(schema.runs, where=schema.runs.c.thread_id == thread_id, conn=conn, **params.__dict__)
    return page_response(page)


def _load_run(conn: sa.Connection, thread_id: str, run_id: str, lock: bool = False) -> dict[str, Any]:
    check_id("thread", thread_id, "thread_id")
    check_id("run", run_id, "run_id")
    run = Store.fetch(conn, schema.runs, run_id, lock=lock)
    if run is None or run["thread_id"] != thread_id:
        if not Store.fetch(conn, schema.threads, thread_id):
            raise not_found("thread", thread_id)
        raise not_found("run", run_id)
    return run


@router.get("/{thread_id}/runs/{run_id}")
def get_run(thread_id: str, run_id: str, request: Request) -> Response:
    with store(request).read() as conn:
        run = _load_run(conn, thread_id, run_id)
    return json(run, headers=poll_headers(request))


@router.post("/{thread_id}/runs/{run_id}")
def modify_run(thread_id: str, run_id: str, body: models.RunModify, request: Request) -> Response:
    s = store(request)
    with s.write() as conn:
        run = _load_run(conn, thread_id, run_id, lock=True)
        if "metadata" in body.model_fields_set:
            run["metadata"] = body.metadata or {}
        s.update(conn, schema.runs, run)
    return json(run, headers=poll_headers(request))


@router.post("/{thread_id}/runs/{run_id}/cancel")
def cancel_run(thread_id: str, run_id: str, request: Request) -> Response:
    rt = runtime(request)
    with rt.store.write() as conn:
        run = _load_run(conn, thread_id, run_id, lock=True)
        status = run["status"]
        ts = now()
        if status in ("completed", "failed", "cancelled", "expired", "incomplete"):
            raise bad_request(f"Cannot cancel run with status '{status}'.")
        if status in ("queued", "requires_action"):
            run.update(status="cancelled", cancelled_at=ts, required_action=None, expires_at=None)
            close_steps(conn, run_id, "cancelled", ts)
            close_messages(conn, run_id, "run_cancelled", ts)
        elif status == "in_progress":
            run["status"] = "cancelling"
        rt.store.update(conn, schema.runs, run, status=run["status"], expires_at=run["expires_at"])
    if run["status"] == "cancelling":
        rt.executor.signal_cancel(run_id)
    else:
        metrics.run_finished(run)
    return json(run, headers=poll_headers(request))


@router.post("/{thread_id}/runs/{run_id}/submit_tool_outputs")
async def submit_tool_outputs(
    thread_id: str, run_id: str, body: models.SubmitToolOutputs, request: Request
) -> Response:
    rt = runtime(request)
    job = _stream_job(request, body.stream)

    def submit() -> tuple[dict, dict]:
        with rt.store.write() as conn:
            run = _load_run(conn, thread_id, run_id, lock=True)
            status = run["status"]
            if status == "requires_action" and run["expires_at"] is not None and rt.clock.now() >= run["expires_at"]:
                status = "expired"
            if status != "requires_action":
                raise bad_request(f'Runs in status "{status}" do not accept tool outputs.')
            expected = [c["id"] for c in run["required_action"]["submit_tool_outputs"]["tool_calls"]]
            got = [o.tool_call_id for o in body.tool_outputs]
            if sorted(expected) != sorted(got):
                raise bad_request(f"Expected tool outputs for call_ids {expected!r}, got {got!r}")
            outputs = {o.tool_call_id: o.output for o in body.tool_outputs}
            t = schema.run_steps
            step = None
            for raw in conn.execute(sa.select(t.c.data).where(t.c.run_id == run_id).order_by(t.c.seq.desc())).scalars():
                candidate = loads(raw)
                if candidate["type"] == "tool_calls" and candidate["status"] == "in_progress":
                    step = candidate
                    break
            if step is None:
                raise bad_request(f"Run {run_id} has no tool call step waiting for outputs.")
            for call in step["step_details"]["tool_calls"]:
                if call["type"] == "function" and call["id"] in outputs:
                    call["function"]["output"] = outputs[call["id"]]
            step.update(status="completed", completed_at=now())
            Store.update(conn, t, step)
            run.update(status="queued", required_action=None)
            rt.store.update(conn, schema.runs, run, status="queued", expires_at=run["expires_at"])
            return _start_in(conn, rt, run, job), step

    run, step = await run_in_threadpool(submit)
    events = [("thread.run.step.completed", step), ("thread.run.queued", run)]
    return await _start(request, run, bool(body.stream), events, job)


@router.get("/{thread_id}/runs/{run_id}/steps")
def list_steps(thread_id: str, run_id: str, request: Request, params: ListParams = Depends(list_params)) -> Response:
    include = _include(request)
    s = store(request)
    with s.read() as conn:
        _load_run(conn, thread_id, run_id)
        page = s.page(schema.run_steps, where=schema.run_steps.c.run_id == run_id, conn=conn, **params.__dict__)
    if '"file_search"' in "".join(page.items):
        page.items = [orjson.dumps(strip_content(loads(i), include)).decode() for i in page.items]
    return page_response(page)


@router.get("/{thread_id}/runs/{run_id}/steps/{step_id}")
def get_step(thread_id: str, run_id: str, step_id: str, request: Request) -> Response:
    include = _include(request)
    check_id("step", step_id, "step_id")
    with store(request).read() as conn:
        _load_run(conn, thread_id, run_id)
        step = Store.fetch(conn, schema.run_steps, step_id)
    if step is None or step["run_id"] != run_id:
        raise not_found("run step", step_id)
    return json(strip_content(step, include))
