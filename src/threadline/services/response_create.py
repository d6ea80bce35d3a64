"""Creating, cancelling and streaming responses (POST /v1/responses, POST /v1/responses/{id}/cancel,
GET /v1/responses/{id}?stream=true).

A response is created in one write transaction: its conversation is locked and checked free, its context (the
conversation's items or the previous_response_id chain, then the input) is validated (function calls and their
outputs pair up; it fits the model's context window unless `truncation: auto`), and the row is inserted. A
synchronous or streamed response is claimed by its execution in that same transaction and executed in this
process; a background one is queued for the workers (queue entry `("response", id)`, claimed by any process) and its
events are recorded (`response_events`), so a client can replay and resume its stream. A stored response on a
conversation appends its input items and then its output items to the conversation's log when it completes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import orjson
import sqlalchemy as sa

from ..auth import request_key_id
from ..engine.events import EventSink, NullSink
from ..engine.response_context import CONTEXT_TOO_LONG, chain_items, conversation_items
from ..engine.responses import INCLUDE_FILE_SEARCH_CONTENT, TERMINAL, ResponsesProjection, close_output
from ..ids import new_id, thread_row_id
from ..providers.base import ProviderError
from ..store import Store, executions, now, owned, response_events, schema
from ..store import items as log
from ..store import responses as rows
from ..tenancy import project_id
from . import containers, conversations, response_compact, response_prompt
from . import response_models as rm
from . import responses as svc
from .errors import Invalid, NotFound

if TYPE_CHECKING:
    from ..app import Runtime
    from ..engine.loop import Execution

DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": keep-alive\n\n"
REPLAY_POLL_S = 0.1  # how often a replayed stream of a response in progress looks for new events
NOT_BACKGROUND = "Only responses created with the 'background' parameter set to true can be cancelled."


@dataclass
class Created:
    """A created response. `response`: as the client first sees it. `stream`: its SSE bytes when streamed.
    `execution`: the task executing it in this process (sync and streamed responses)."""

    response: dict[str, Any]
    stream: AsyncIterator[bytes] | None
    execution: asyncio.Task | None
    projection: ResponsesProjection | None


# -- validation ----------------------------------------------------------------------------------------------------


def _input_models(body: rm.ResponseCreate) -> list[Any]:
    if isinstance(body.input, str):
        return [rm.MessageItem(role="user", content=body.input)]
    return list(body.input or [])


def check_pairs(prior: list[dict[str, Any]], items: list[dict[str, Any]]) -> None:
    """Every function call in the context has an output, and every output of this request answers a call
    (contract §5.5: matched across the chain or conversation and the input). Raises Invalid (param input)."""
    context = prior + items
    calls = list(dict.fromkeys(i["call_id"] for i in context if i.get("type") == "function_call"))
    known = set(calls)
    answered = {i.get("call_id") for i in context if i.get("type") == "function_call_output"}
    for item in items:
        if item.get("type") == "function_call_output" and item.get("call_id") not in known:
            raise Invalid(
                f"No tool call found for function call output with call_id {item.get('call_id')}.", param="input"
            )
    for call_id in calls:
        if call_id not in answered:
            raise Invalid(f"No tool output found for function call {call_id}.", param="input")


def _check_tool_choice(body: rm.ResponseCreate) -> None:
    """A tool_choice must name a tool of the request (Invalid, param tool_choice)."""
    choice = body.tool_choice
    tools = body.tools or []
    if isinstance(choice, rm.ToolChoiceFunction):
        if not any(isinstance(t, rm.FunctionTool) and t.name == choice.name for t in tools):
            raise Invalid(
                f"Tool choice '{choice.name}' not found in 'tools' parameter.",
                param="tool_choice",
                code="invalid_value",
            )
    elif isinstance(choice, rm.ToolChoiceHosted) and not any(t.type == choice.type for t in tools):
        raise Invalid(
            f"Tool choice '{choice.type}' not found in 'tools' parameter.", param="tool_choice", code="invalid_value"
        )


def _check_length(rt: Runtime, body: rm.ResponseCreate, model: str, context: list[dict[str, Any]]) -> None:
    """With `truncation: disabled` (the default) a context longer than the model's window is a 400."""
    if body.truncation == "auto":
        return
    try:
        window = rt.providers.context_window(model)
    except ProviderError:
        return  # an unknown model fails the response itself
    tokens = svc.input_tokens_of(body, context)
    reserve = body.max_output_tokens or min(4096, window // 4)
    if tokens > window - reserve:
        raise Invalid(CONTEXT_TOO_LONG, param="input", code="context_length_exceeded")


def _conversation(conn: sa.Connection, rt: Runtime, value: str) -> str:
    """The locked threads row id of a conversation that no run or response is using. Raises NotFound / Invalid."""
    if not value.startswith(("conv_", "thread_")) or "\x00" in value:
        raise Invalid(
            f"Invalid 'conversation': '{value}'. Expected an ID that begins with 'conv'.", param="conversation"
        )
    thread_id = thread_row_id(value)
    if rt.store.lock_thread(conn, thread_id) is None:
        missing = NotFound("conversation", value, f"Conversation with id '{value}' not found.")
        missing.param = "conversation"
        raise missing
    if log.active_execution(conn, thread_id) is not None:
        raise Invalid(conversations.LOCKED, param="conversation", code="conversation_locked")
    return thread_id


def _window(rt: Runtime, model: str) -> int | None:
    try:
        return rt.providers.context_window(model)
    except ProviderError:
        return None


def _previous(conn: sa.Connection, previous_id: str, window: int | None) -> list[dict[str, Any]]:
    items = chain_items(conn, previous_id, window)
    t = schema.responses
    status = conn.execute(sa.select(t.c.status).where(owned(t, t.c.id == previous_id))).scalar()
    if status in ("queued", "in_progress"):
        raise Invalid(
            f"Previous response with id '{previous_id}' is still {status.replace('_', ' ')}; wait for it to "
            "finish before continuing from it.",
            param="previous_response_id",
        )
    return items


def _row_json(row: log.ItemRow) -> dict[str, Any]:
    return {"id": row.id, "type": row.type, "data": row.data, "item": row.item}


# -- conversation items --------------------------------------------------------------------------------------------


def output_rows(thread_id: str, output: list[dict[str, Any]], ts: int) -> list[log.ItemRow]:
    """A response's output items as rows of the conversation's log (a message item is also an Assistants
    message, with no run and no assistant)."""
    out = []
    for item in output:
        if item.get("type") != "message":
            out.append(log.ItemRow(id=item["id"], type=item["type"], data=dict(item)))
            continue
        content = []
        for part in item.get("content") or []:
            if part.get("type") == "output_text":
                content.append({"type": "text", "text": {"value": part.get("text", ""), "annotations": []}})
            elif part.get("type") == "refusal":
                content.append({"type": "refusal", "refusal": part.get("refusal", "")})
        status = item.get("status") or "completed"
        message = {
            "id": item["id"],
            "object": "thread.message",
            "created_at": ts,
            "assistant_id": None,
            "thread_id": thread_id,
            "run_id": None,
            "status": status,
            "incomplete_details": {"reason": "max_tokens"} if status == "incomplete" else None,
            "completed_at": ts if status == "completed" else None,
            "incomplete_at": ts if status == "incomplete" else None,
            "role": "assistant",
            "content": content,
            "attachments": [],
            "metadata": {},
        }
        out.append(log.ItemRow(id=item["id"], type="message", data=message, item=dict(item)))
    return out


def append_to_conversation(
    conn: sa.Connection, thread_id: str, state: dict[str, Any], output: list[dict[str, Any]]
) -> None:
    """Append the response's input items (prepared when it was created) and then its output items to the
    conversation's log, inside the transaction that completes the response. A conversation deleted meanwhile is
    left alone."""
    if Store.fetch(conn, schema.threads, thread_id) is None:
        return
    ts = now()
    inputs = [log.ItemRow(**r) for r in state.get("conversation_rows") or []]
    log.append(conn, thread_id, inputs + output_rows(thread_id, output, ts), ts)
    state.pop("conversation_rows", None)


# -- create --------------------------------------------------------------------------------------------------------


def _prepare(conn: sa.Connection, rt: Runtime, body: rm.ResponseCreate, model: str) -> tuple[dict, list, dict, str]:
    """Validate the request against the store and build the response row: (response, input items, state,
    thread id or "")."""
    thread_id = ""
    models = _input_models(body)
    state: dict[str, Any] = {"response_include": list(body.include or [])}
    if body.include and "file_search_call.results" in body.include:
        state["include"] = [INCLUDE_FILE_SEARCH_CONTENT]
    conv = body.conversation_id
    if conv is not None:
        thread_id = _conversation(conn, rt, conv)
        prior = conversation_items(conn, thread_id, _window(rt, model))
        built = conversations.build_rows(conn, thread_id, models, param="input")
        items = conversations.item_views(conn, built, set(rm.INCLUDABLE))
        if body.store is not False:
            state["conversation_rows"] = [_row_json(r) for r in built]
    elif body.previous_response_id is not None:
        prior = _previous(conn, body.previous_response_id, _window(rt, model))
        items = conversations.as_items(conn, models)
    else:
        prior, items = [], conversations.as_items(conn, models)
    check_pairs(prior, items)
    response_compact.expand(rt.settings.data_dir, items)  # a compaction blob not ours is a 400 now
    _check_tool_choice(body)
    _check_length(rt, body, model, prior + items)
    response = svc.response_object(body, response_id=new_id("response"), created_at=now(), model=model)
    return response, items, state, thread_id


def _replay_or_none(rt: Runtime, response_id: str, stream: bool) -> AsyncIterator[bytes] | None:
    return replay(rt, response_id, -1) if stream else None


async def _container(rt: Runtime, body: rm.ResponseCreate) -> tuple[str, bool]:
    """The container the request's code_interpreter tool runs in ("" without one) and whether it was created for
    this response (`container: {type: "auto"}`). Raises Invalid / NotFound before anything runs."""
    for i, tool in enumerate(body.tools or []):
        if isinstance(tool, rm.CodeInterpreterTool):
            spec = tool.container if isinstance(tool.container, str) else tool.container.model_dump(exclude_none=True)
            return await containers.for_response(rt, spec, f"tools[{i}].container")
    return "", False


async def create_response(rt: Runtime, body: rm.ResponseCreate) -> Created:
    """Create a response and execute it: at once in this process (sync: the caller awaits `execution`; streamed:
    `stream`), or queued for the workers (background). Raises Invalid / NotFound before anything is stored."""
    if body.prompt is not None:
        body = await anyio.to_thread.run_sync(response_prompt.with_assistant, rt.store, body)
    if not body.model:
        raise Invalid("Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
    model = body.model
    background = bool(body.background)
    sink = EventSink(done=DONE) if body.stream and not background else NullSink()
    job: Execution | None = None if background else rt.executor.response_job(sink)

    container_id, made = await _container(rt, body)
    key = request_key_id.get()  # recorded with the response's usage

    def create() -> dict[str, Any]:
        with rt.store.write() as conn:
            response, items, state, thread_id = _prepare(conn, rt, body, model)
            rt.limits.check_request(conn, project_id(), model)  # 429 while the model's RPM limit is reached
            state["api_key_id"] = key
            if container_id:
                state["container_id"] = container_id
                if made:
                    containers.name_in(conn, container_id, response["id"])
            rows.insert(conn, response, items, thread_id=thread_id or None, state=state)
            if background:
                projection = ResponsesProjection(rt, response["id"], NullSink(), "", record=True)
                queued = dict(response)
                projection.emit("response.created", {"response": queued})
                projection.emit("response.queued", {"response": queued})
                projection.flush_events(conn)
                rt.queue.queued_in(conn, ("response", response["id"]))
                return response
            assert job is not None
            first = orjson.loads(orjson.dumps(response))
            job.start_in(conn, response)
            return {**first, "status": "in_progress"}

    try:
        response = await anyio.to_thread.run_sync(create)
    except BaseException:
        if made:  # the request was refused: its auto container goes with it
            await containers.delete(rt, container_id)
        raise
    if background:
        await rt.queue.put(("response", response["id"]))
        return Created(response, _replay_or_none(rt, response["id"], bool(body.stream)), None, None)
    assert job is not None
    projection = job.projection
    assert isinstance(projection, ResponsesProjection)
    projection.emit("response.created", {"response": response})
    task = rt.workers.spawn(rt.executor.execute(response["id"], sink, job))
    stream = _until_disconnect(rt, response["id"], sink) if isinstance(sink, EventSink) else None
    return Created(response, stream, task, projection)


async def _until_disconnect(rt: Runtime, response_id: str, sink: EventSink) -> AsyncIterator[bytes]:
    """A streamed response's SSE bytes; a client that goes away before the end stops the generation (the response
    ends `cancelled`), as a non-background stream cannot be resumed."""
    finished = False
    try:
        async for chunk in sink.sse():
            yield chunk
        finished = True
    finally:
        if not finished:
            rt.executor.signal_cancel(response_id)


async def finish_sync(created: Created) -> dict[str, Any]:
    """Wait for a synchronous response's execution (not cancelled if the client goes away) and return its final
    object."""
    assert created.execution is not None and created.projection is not None
    await asyncio.shield(created.execution)
    projection = created.projection
    final = projection.response if projection.response.get("status") in TERMINAL else None
    if final is None:
        return created.response
    include = projection.state.get("response_include", [])
    return svc.with_include(final, set(include))


# -- cancel and replay ---------------------------------------------------------------------------------------------


def cancel_response(rt: Runtime, response_id: str) -> dict[str, Any]:
    """Cancel a background response: queued or in progress → cancelled at once (its open output items become
    incomplete; the executor driving it is told and stops at its next step). A finished one is returned as it
    is (idempotent). Raises NotFound, Invalid (not a background response). Blocking."""
    with rt.store.write() as conn:
        response = rows.fetch(conn, response_id, lock=True)
        if response is None or response.get("store") is False:
            raise svc.response_not_found(response_id)
        if not response.get("background"):
            raise Invalid(NOT_BACKGROUND, param="response_id")
        if response["status"] in TERMINAL:
            return response
        t = schema.responses
        raw_state = conn.execute(sa.select(t.c.state).where(t.c.id == response_id)).scalar()
        state = orjson.loads(raw_state or "{}")
        output = list(response.get("output") or [])
        close_output(output)
        prompt, completion = state.get("prompt_tokens", 0), state.get("completion_tokens", 0)
        response.update(status="cancelled", output=output, usage=svc.usage_object(prompt, completion))
        executions.save(conn, t, response, lease_owner=None)
    rt.executor.signal_cancel(response_id)
    return response


def _encode(data: str) -> bytes:
    kind = orjson.loads(data)["type"]
    return b"event: " + kind.encode() + b"\ndata: " + data.encode() + b"\n\n"


async def replay(rt: Runtime, response_id: str, starting_after: int, keepalive_s: float = 15.0) -> AsyncIterator[bytes]:
    """A background response's recorded events after `starting_after` (-1: all), with their original sequence
    numbers; while it is still running, new events as they are recorded; `[DONE]` once it has ended."""

    def read(cursor: int) -> tuple[list[tuple[int, str]], str | None]:
        with rt.store.read() as conn:
            events = response_events.after(conn, response_id, cursor)
            status = conn.execute(
                sa.select(schema.responses.c.status).where(schema.responses.c.id == response_id)
            ).scalar()
        return events, status

    cursor, idle = starting_after, 0.0
    while True:
        events, status = await anyio.to_thread.run_sync(read, cursor)
        for seq, data in events:
            yield _encode(data)
            cursor = seq
        if events:
            idle = 0.0
            continue
        if status is None or status in TERMINAL:
            yield DONE
            return
        await asyncio.sleep(REPLAY_POLL_S)
        idle += REPLAY_POLL_S
        if idle >= keepalive_s:
            idle = 0.0
            yield KEEPALIVE


def check_replayable(rt: Runtime, response_id: str) -> None:
    """A stored background response (whose events are recorded). Raises NotFound, Invalid. Blocking."""
    with rt.store.read() as conn:
        response = svc.load_stored(conn, response_id)
    if not response.get("background"):
        raise Invalid(
            "Invalid value for 'stream': only responses created with 'background' set to true can be streamed again.",
            param="stream",
            code="invalid_value",
        )


__all__ = ["Created", "append_to_conversation", "cancel_response", "create_response", "finish_sync", "replay"]
