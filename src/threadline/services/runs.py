"""Runs: create (on a thread, or with a new thread), cancel, submit tool outputs, modify, look up.

Each operation is one write transaction. A run to be streamed is started by its execution inside the
transaction that creates (or resumes) it, so a plain streamed run costs one transaction less; a run not streamed
is queued for the workers. Errors are services.errors (Invalid, NotFound).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import sqlalchemy as sa

from .. import metrics
from ..auth import request_key_id
from ..engine.assistants import function_output_item, tool_call_item
from ..engine.events import EventSink
from ..engine.objects import run_object
from ..store import Store, dumps, executions, loads, now, runs, schema
from ..store import items as log
from ..tenancy import project_id
from .errors import Invalid, NotFound, check_id

if TYPE_CHECKING:
    from ..app import Runtime
    from ..engine.loop import Execution

JSON_SCHEMA_TOOLS = (
    "Invalid tools: all tools must be of type `function` when `response_format` is of type `json_schema`."
)

# Adds the request's messages to a thread inside the run's transaction: (conn, thread, created_at) -> messages.
AddMessages = Callable[[sa.Connection, dict[str, Any], int], list[dict[str, Any]]]
# Creates the thread of create-thread-and-run inside its transaction: conn -> thread.
CreateThread = Callable[[sa.Connection], dict[str, Any]]


@dataclass
class RunOptions:
    """What a run request sets; None means "the assistant's" (or the default). Wire-shaped values (tools,
    tool_choice, response_format, truncation_strategy) are already normalised to the run object's shapes."""

    assistant_id: str
    model: str | None = None
    instructions: str | None = None
    additional_instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    metadata: dict[str, Any] | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_prompt_tokens: int | None = None
    max_completion_tokens: int | None = None
    truncation_strategy: dict[str, Any] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: str | dict[str, Any] | None = None  # None or falsy: the assistant's
    include: list[str] = field(default_factory=list)  # run steps' include[] for the run's stream


@dataclass
class Started:
    """A created or resumed run. `run`: as queued (what the first events and a non-streamed answer report).
    `stream`: the run's events, when it is executed for this request (the events before its execution are in it
    already); None when it was queued for the workers."""

    run: dict[str, Any]
    stream: EventSink | None
    thread: dict[str, Any] | None = None  # create-thread-and-run's new thread
    step: dict[str, Any] | None = None  # submit_tool_outputs' completed step


def _tool_choice(choice: str | dict[str, Any] | None, tools: list[dict[str, Any]]) -> str | dict[str, Any]:
    if choice is None:
        return "auto"
    if isinstance(choice, dict):
        kind = choice["type"]
        if kind == "function":
            name = choice["function"]["name"]
            if not any(t["type"] == "function" and t["function"]["name"] == name for t in tools):
                raise Invalid(
                    f"Invalid 'tool_choice': no function named '{name}' among the run's tools.", param="tool_choice"
                )
        elif not any(t["type"] == kind for t in tools):
            raise Invalid(f"Invalid 'tool_choice': the run has no '{kind}' tool.", param="tool_choice")
    return choice


def new_run(conn: sa.Connection, rt: Runtime, thread_id: str, opts: RunOptions) -> dict[str, Any]:
    """The run object for `opts` on `thread_id` (locked by the caller), its settings resolved against the
    assistant's. Raises Invalid / NotFound (assistant) / Invalid (an active run, a bad combination)."""
    assistant_id = check_id("assistant", opts.assistant_id, "assistant_id")
    assistant = Store.fetch(conn, schema.assistants, assistant_id)
    if assistant is None:
        raise NotFound("assistant", assistant_id)
    active = rt.store.active_run_id(conn, thread_id)
    if active:
        raise Invalid(f"Thread {thread_id} already has an active run {active}.")
    tools = opts.tools if opts.tools is not None else assistant["tools"]
    response_format = opts.response_format or assistant.get("response_format", "auto")
    is_schema = isinstance(response_format, dict) and response_format.get("type") == "json_schema"
    if is_schema and any(t["type"] != "function" for t in tools):
        raise Invalid(JSON_SCHEMA_TOOLS, param="response_format")
    tool_choice = _tool_choice(opts.tool_choice, tools)
    instructions = opts.instructions if opts.instructions is not None else (assistant.get("instructions") or "")
    if opts.additional_instructions:
        extra = opts.additional_instructions
        instructions = f"{instructions}\n{extra}" if instructions else extra
    return run_object(
        thread_id=thread_id,
        assistant=assistant,
        model=opts.model or assistant["model"],
        instructions=instructions,
        tools=tools,
        metadata=opts.metadata or {},
        temperature=opts.temperature if opts.temperature is not None else assistant.get("temperature"),
        top_p=opts.top_p if opts.top_p is not None else assistant.get("top_p"),
        max_prompt_tokens=opts.max_prompt_tokens,
        max_completion_tokens=opts.max_completion_tokens,
        truncation_strategy=opts.truncation_strategy or {"type": "auto", "last_messages": None},
        tool_choice=tool_choice,
        parallel_tool_calls=True if opts.parallel_tool_calls is None else opts.parallel_tool_calls,
        response_format=response_format,
        expires_after_s=rt.settings.run_expires_after_s,
    )


@dataclass
class _Job:
    """The execution of a streamed run, started in its creator's transaction, and where its events go."""

    execution: Execution
    sink: EventSink

    def start_in(self, conn: sa.Connection, run: dict[str, Any]) -> None:
        self.execution.start_in(conn, run)


def _start_in(conn: sa.Connection, rt: Runtime, run: dict[str, Any], job: _Job | None) -> dict[str, Any]:
    """Start a run executed at once (`job` given) in the transaction that queued it, or tell the run queue of it
    (`job` None: a background run). Returns the run as queued, which is what thread.run.created / .queued report
    (thread.run.in_progress follows them)."""
    if job is None:
        rt.queue.queued_in(conn, ("run", run["id"]))
        return run
    queued = loads(dumps(run))
    job.start_in(conn, run)
    return queued


async def _dispatch(rt: Runtime, started: Started, job: _Job | None, before: list[tuple[str, Any]]) -> Started:
    """Queue the run for the workers, or (streamed) emit `before` and execute it in this process."""
    if job is None:
        await rt.queue.put(("run", started.run["id"]))
        return started
    for event, data in before:
        job.sink.emit(event, data)
    rt.workers.spawn(rt.executor.execute(started.run["id"], job.sink, job.execution))
    started.stream = job.sink
    return started


def _job(rt: Runtime, stream: bool) -> _Job | None:
    if not stream:
        return None
    sink = EventSink()
    return _Job(rt.executor.job(sink), sink)


async def create_run(
    rt: Runtime, thread_id: str, opts: RunOptions, *, stream: bool, add_messages: AddMessages | None = None
) -> Started:
    """Create a run on `thread_id` (its additional messages added by `add_messages` in the same transaction) and
    queue or stream it. Raises NotFound (thread, assistant), Invalid, Invalid."""
    job = _job(rt, stream)
    key = request_key_id.get()  # recorded with the run's usage

    def create() -> dict[str, Any]:
        with rt.store.write() as conn:
            thread = rt.store.lock_thread(conn, thread_id)
            if thread is None:
                raise NotFound("thread", thread_id)
            run = new_run(conn, rt, thread_id, opts)
            rt.limits.check_request(conn, project_id(), run["model"])  # 429 while the model's RPM limit is reached
            if add_messages is not None:
                add_messages(conn, thread, run["created_at"])
            runs.insert(conn, run, {"include": opts.include, "api_key_id": key})
            return _start_in(conn, rt, run, job)

    run = await rt.store.run_write(create, offload=anyio.to_thread.run_sync)
    before = [("thread.run.created", run), ("thread.run.queued", run)]
    return await _dispatch(rt, Started(run, None), job, before)


async def create_thread_and_run(rt: Runtime, opts: RunOptions, *, stream: bool, create_thread: CreateThread) -> Started:
    """Create a thread (by `create_thread`) and a run on it in one transaction, and queue or stream the run."""
    job = _job(rt, stream)
    key = request_key_id.get()

    def create() -> tuple[dict, dict]:
        with rt.store.write() as conn:
            thread = create_thread(conn)
            run = new_run(conn, rt, thread["id"], opts)
            rt.limits.check_request(conn, project_id(), run["model"])
            runs.insert(conn, run, {"include": [], "api_key_id": key})
            return thread, _start_in(conn, rt, run, job)

    thread, run = await rt.store.run_write(create, offload=anyio.to_thread.run_sync)
    before = [("thread.created", thread), ("thread.run.created", run), ("thread.run.queued", run)]
    return await _dispatch(rt, Started(run, None, thread=thread), job, before)


def load_run(conn: sa.Connection, thread_id: str, run_id: str, *, lock: bool = False) -> dict[str, Any]:
    """Run `run_id` of `thread_id`. Raises Invalid, NotFound (the thread, else the run)."""
    check_id("thread", thread_id, "thread_id")
    check_id("run", run_id, "run_id")
    run = Store.fetch(conn, schema.runs, run_id, lock=lock)
    if run is None or run["thread_id"] != thread_id:
        if not Store.fetch(conn, schema.threads, thread_id):
            raise NotFound("thread", thread_id)
        raise NotFound("run", run_id)
    return run


def modify_run(
    rt: Runtime, thread_id: str, run_id: str, metadata: dict[str, Any] | None, *, set_metadata: bool
) -> dict:
    """Replace the run's metadata (when `set_metadata`; None clears it). Blocking."""
    with rt.store.write() as conn:
        run = load_run(conn, thread_id, run_id, lock=True)
        if set_metadata:
            run["metadata"] = metadata or {}
        Store.update(conn, schema.runs, run)
    return run


def cancel_run(rt: Runtime, thread_id: str, run_id: str) -> dict[str, Any]:
    """Cancel a run: `queued` and `requires_action` runs end `cancelled` at once; an `in_progress` run becomes
    `cancelling` and its executor is signalled to finish it. Raises Invalid for a finished run. Blocking."""
    with rt.store.write() as conn:
        run = load_run(conn, thread_id, run_id, lock=True)
        status = run["status"]
        if status in runs.TERMINAL:
            raise Invalid(f"Cannot cancel run with status '{status}'.")
        if status in ("queued", "requires_action"):
            runs.finish(conn, run, "cancelled", now())
        else:
            if status == "in_progress":
                run["status"] = "cancelling"
            executions.save(conn, schema.runs, run)
    if run["status"] == "cancelling":
        rt.executor.signal_cancel(run_id)
    else:
        metrics.run_finished(run)
    return run


async def submit_tool_outputs(
    rt: Runtime, thread_id: str, run_id: str, outputs: list[tuple[str, str]], *, stream: bool
) -> Started:
    """Answer a `requires_action` run's function calls with `outputs` ((tool_call_id, output) in request order):
    its tool step completes and the run is queued again (or streamed). Raises Invalid when the run does not
    wait for outputs or the call ids differ from the ones it waits for."""
    job = _job(rt, stream)

    def submit() -> tuple[dict, dict]:
        with rt.store.write() as conn:
            run = load_run(conn, thread_id, run_id, lock=True)
            status = run["status"]
            if status == "requires_action" and run["expires_at"] is not None and rt.clock.now() >= run["expires_at"]:
                status = "expired"
            if status != "requires_action":
                raise Invalid(f'Runs in status "{status}" do not accept tool outputs.')
            expected = [c["id"] for c in run["required_action"]["submit_tool_outputs"]["tool_calls"]]
            got = [call_id for call_id, _ in outputs]
            if sorted(expected) != sorted(got):
                raise Invalid(f"Expected tool outputs for call_ids {expected!r}, got {got!r}")
            answers = dict(outputs)
            step = runs.waiting_tool_step(conn, run_id)
            if step is None:
                raise Invalid(f"Run {run_id} has no tool call step waiting for outputs.")
            calls, answered = [], []
            for call in step["step_details"]["tool_calls"]:
                if call["type"] == "function" and call["id"] in answers:
                    call["function"]["output"] = answers[call["id"]]
                    calls.append(tool_call_item(call, run))
                    answered.append(function_output_item(call["id"], answers[call["id"]]))
            # the calls and their outputs as conversation items too (engine/assistants.py)
            log.append(conn, run["thread_id"], [c for c in calls if c is not None] + answered, now())
            step.update(status="completed", completed_at=now())
            Store.update(conn, schema.run_steps, step)
            run.update(status="queued", required_action=None)
            executions.save(conn, schema.runs, run)
            return _start_in(conn, rt, run, job), step

    run, step = await rt.store.run_write(submit, offload=anyio.to_thread.run_sync)
    before = [("thread.run.step.completed", step), ("thread.run.queued", run)]
    return await _dispatch(rt, Started(run, None, step=step), job, before)
