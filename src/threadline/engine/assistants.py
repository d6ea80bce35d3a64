"""The Assistants projection: an execution seen as a run with steps and messages, streamed as `thread.*` events.

It turns the loop's neutral events (engine/neutral.py) into the run's rows and events: a reply becomes an
assistant message and its message_creation step; tool calls become a tool_calls step; function calls move the run
to requires_action; the ending closes what is open and sets the run's terminal status. Every event is emitted only
after the commit that makes it true. Writes go through store/executions.py: a transition is guarded by the run's
status, and any other write is applied only while the run is in_progress under this process's lease; when one
fails (a cancel or the expiry sweep came first) the projection reports where the run is now and raises Stop.

Transactions of a plain text run: the claim (or the creator's own, with start_in) and one that saves the reply,
its step and the run's completion together. A run nobody streams keeps its open reply in memory until then, or
until the reply has taken OPEN_WRITE_AFTER_S, when it is saved in_progress for clients that poll.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa

from .. import metrics
from ..ids import new_id
from ..store import Store, executions, now, runs, schema
from ..store import items as log
from ..store import usage as usage_records
from ..tenancy import current_project
from ..tokens import count_tokens
from . import neutral as n
from .events import NullSink, error_payload
from .objects import assistant_message, step_object, strip_content, usage
from .projection import Prepare
from .responses import file_search_item
from .runtime import EngineRuntime

# A run nobody streams saves its open reply message at once only when the reply takes at least this long.
OPEN_WRITE_AFTER_S = 0.25
# Fields of an assistant message the executor owns; the rest (metadata) belongs to API clients.
MESSAGE_FIELDS = ("content", "status", "completed_at", "incomplete_at", "incomplete_details")
# The statuses each ending may come from.
ENDS_FROM = {
    "completed": ("in_progress",),
    "incomplete": ("in_progress",),
    "failed": ("in_progress", "queued"),
    "cancelled": ("in_progress", "cancelling"),
    "expired": ("in_progress", "queued", "requires_action"),
}

T = TypeVar("T")


class Sink(Protocol):
    """Where a run's events go (events.EventSink for a streamed request; events.NullSink when nobody listens)."""

    def emit(self, event: str, data: Any) -> None: ...

    def close(self) -> None: ...


def merge_owned(current: dict[str, Any] | None, ours: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """The stored object with only `fields` taken from the writer's copy (the writer owns nothing else)."""
    if current is None:
        return ours
    merged = dict(current)
    for name in fields:
        if name in ours:
            merged[name] = ours[name]
    return merged


def _finish_step(step: dict, status: str, ts: int) -> None:
    step["status"] = status
    step[runs.STEP_STAMP[status]] = ts


def tool_call_item(call: dict[str, Any], run: dict[str, Any]) -> log.ItemRow | None:
    """The conversation item of an Assistants tool call (contract §7.3); the call's id is the item's call_id."""
    kind = call.get("type")
    if kind == "function":
        if call["function"].get("output") is None:
            return None  # appended with its output when the outputs are submitted: never a call left unanswered
        item = {
            "id": new_id("function_call"),
            "type": "function_call",
            "status": "completed",
            "call_id": call["id"],
            "name": call["function"]["name"],
            "arguments": call["function"]["arguments"],
        }
    elif kind == "file_search":
        item = {"id": new_id("file_search_call"), "type": "file_search_call", "status": "completed"}
        item.update(file_search_item(call, "{}"))
    elif kind == "code_interpreter":
        ci = call.get("code_interpreter") or {}
        outputs = []
        for o in ci.get("outputs") or []:
            if o.get("type") == "logs":
                outputs.append({"type": "logs", "logs": o.get("logs", "")})
            elif o.get("type") == "image":
                outputs.append({"type": "image", "url": f"/v1/files/{o['image']['file_id']}/content"})
        item = {
            "id": new_id("code_interpreter_call"),
            "type": "code_interpreter_call",
            "status": "completed",
            "code": ci.get("input", ""),
            "container_id": container_of(run["thread_id"]),
            "outputs": outputs,
        }
    else:
        return None
    return log.ItemRow(id=item["id"], type=item["type"], data=item)


def function_output_item(call_id: str, output: str) -> log.ItemRow:
    """The `function_call_output` item of a submitted tool output."""
    item = {
        "id": new_id("function_call_output"),
        "type": "function_call_output",
        "status": "completed",
        "call_id": call_id,
        "output": output,
    }
    return log.ItemRow(id=item["id"], type=item["type"], data=item)


def container_of(thread_id: str) -> str:
    """The container id a thread's code_interpreter session is shown as (one session per thread)."""
    return "cntr_" + thread_id.removeprefix("thread_")


def _usage(u: n.Usage | None) -> dict[str, int] | None:
    return None if u is None else usage(u.prompt_tokens, u.completion_tokens)


class AssistantsProjection:
    """One run's rows and `thread.*` events (implements engine.projection.Projection)."""

    table = schema.runs

    def __init__(self, runtime: EngineRuntime, run_id: str, sink: Sink, owner: str) -> None:
        self.rt = runtime
        self.execution_id = run_id
        self.sink = sink
        self.owner = owner  # the lease owner this process writes as
        self.state: dict[str, Any] = {}
        self.project: str | None = None  # the run's project, known once it is claimed
        self.run: dict[str, Any] = {}
        self.step: dict[str, Any] | None = None  # open step
        self.message: dict[str, Any] | None = None  # open assistant message
        # The open message and its step exist only in memory (a run nobody streams saves them with the write that
        # closes them, or once the reply has taken OPEN_WRITE_AFTER_S); opened_at: time.monotonic() at opening.
        self.unsaved = False
        self.opened_at = 0.0
        self.text = ""  # the open message's text so far
        self.annotations: list[dict[str, Any]] = []  # of the open message's text, as streamed
        self.text_index = 0  # the content index of the open message's text part
        self.text_started = False
        self.records: dict[int, dict[str, Any]] = {}  # the open tool step's calls by their index in the turn

    # -- database and events ------------------------------------------------------------------------------------

    async def owned_write(self, fn: Callable[[sa.Connection], T]) -> T:
        """Run `fn(conn)` in a write transaction holding the run's row lock, only while this process still drives
        the run (in_progress under its lease); otherwise report where the run is and stop."""
        try:
            return await self.rt.store.run_write(
                executions.owned_write, self.rt.store, schema.runs, self.execution_id, self.owner, fn
            )
        except executions.LeaseLost:
            await self._lost_run()
            raise n.Stop from None

    async def _transition(
        self, expected: tuple[str, ...], mutate: Callable[[dict, sa.Connection], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        return await self.rt.store.run_write(
            executions.transition, self.rt.store, schema.runs, self.execution_id, expected, mutate
        )

    async def _current(self) -> dict[str, Any] | None:
        return await asyncio.to_thread(self.rt.store.get, schema.runs, self.execution_id)

    def emit(self, event: str, data: Any) -> None:
        if event.startswith("thread.run.step.") and event != "thread.run.step.delta":
            data = strip_content(data, self.state.get("include", []))
        self.sink.emit(event, data)

    def report_unrecorded(self, failure: n.Failure, storage_full: bool) -> None:
        if storage_full:
            payload = error_payload(n.STORAGE_FULL_MESSAGE, "insufficient_storage", "insufficient_storage")
            self.sink.emit("error", payload)
        else:
            self.sink.emit("error", error_payload("The server had an error while processing the run."))

    def close(self) -> None:
        self.sink.close()

    # -- the claim ------------------------------------------------------------------------------------------------

    def spec(self) -> n.ExecutionSpec:
        run = self.run
        return n.ExecutionSpec(
            id=run["id"],
            model=run["model"],
            instructions=run.get("instructions") or "",
            tools=run["tools"],
            tool_choice=run.get("tool_choice") or "auto",
            parallel_tool_calls=run.get("parallel_tool_calls", True),
            max_prompt_tokens=run.get("max_prompt_tokens"),
            max_completion_tokens=run.get("max_completion_tokens"),
            expires_at=run.get("expires_at"),
            obj=run,
        )

    def _claim(self, run: dict, conn: sa.Connection, prepare: Prepare) -> None:
        """Mark `run` (queued, row-locked or just written in `conn`'s transaction) in_progress under this
        process's lease and let the loop prepare its first turn, in that same transaction."""
        run["status"] = "in_progress"
        run["started_at"] = now()
        lease_until = self.rt.clock.now() + self.rt.settings.run_lease_s
        self.state, self.project = executions.take_lease(conn, schema.runs, run["id"], self.owner, lease_until)
        current_project.set(self.project)  # the first turn's context is read as the run's project
        self.run = run
        prepare(conn, self.spec(), self.state)

    def start_in(self, conn: sa.Connection, obj: dict[str, Any], prepare: Prepare) -> None:
        self.execution_id = obj["id"]
        self._claim(obj, conn, prepare)
        executions.save(conn, schema.runs, obj)

    async def claim(self, prepare: Prepare) -> n.ExecutionSpec | None:
        run = await self._transition(("queued",), lambda run, conn: self._claim(run, conn, prepare))
        if run is None:
            current = await self._current()
            if current and current["status"] == "cancelling":
                self.run = current
                await self._end("cancelled")
            return None
        self.run = run
        return self.spec()

    async def started(self) -> None:
        self.emit("thread.run.in_progress", self.run)

    # -- events -----------------------------------------------------------------------------------------------------

    async def handle(self, event: n.Happening) -> None:
        if isinstance(event, n.TextDelta):
            await self._text_delta(event)
        elif isinstance(event, n.TextStarted):
            await self._open_message(event.parts)
        elif isinstance(event, n.TextDone):
            await self._close_message(event)
        elif isinstance(event, n.ToolCallStarted):
            await self._tool_started(event)
        elif isinstance(event, n.ToolArgumentsDelta):
            self._step_delta(event.index, {"type": "function", "function": {"arguments": event.delta}})
        elif isinstance(event, n.ToolCallDone):
            if event.server is None:
                function = {"name": event.name, "arguments": event.arguments, "output": None}
                self.records[event.index] = {"id": event.call_id, "type": "function", "function": function}
        elif isinstance(event, n.ServerToolProgress):
            self._step_delta(event.index, event.payload)
        elif isinstance(event, n.ServerToolDone):
            self.records[event.index] = event.call
        elif isinstance(event, n.ToolTurnDone):
            await self._tool_turn_done(event)
        elif isinstance(event, n.FunctionCallsPending):
            await self._requires_action(event)
        elif isinstance(event, n.Finished):
            await self._finished(event)

    # -- assistant messages --------------------------------------------------------------------------------------

    def _insert_open(self, conn: sa.Connection, message: dict, step: dict) -> None:
        Store.insert(conn, schema.run_steps, step, run_id=self.execution_id, thread_id=self.run["thread_id"])
        Store.insert(conn, schema.messages, message, thread_id=self.run["thread_id"], run_id=self.execution_id)

    async def _open_message(self, parts: list[dict[str, Any]]) -> None:
        message = assistant_message(self.run)
        step = step_object(
            self.run,
            "message_creation",
            {"type": "message_creation", "message_creation": {"message_id": message["id"]}},
        )
        if isinstance(self.sink, NullSink):
            # Nobody streams this run: no event needs the open message committed yet, so a short reply is saved
            # in one write with its completion (a client polling sees it in_progress once it takes longer).
            self.unsaved, self.opened_at = True, time.monotonic()
        else:
            await self.owned_write(lambda conn: self._insert_open(conn, message, step))
        self.step, self.message, self.text = step, message, ""
        self.emit("thread.run.step.created", step)
        self.emit("thread.run.step.in_progress", step)
        self.emit("thread.message.created", message)
        self.emit("thread.message.in_progress", message)
        for i, part in enumerate(parts):
            message["content"].append(part)
            self._message_delta([{"index": i, **part}])
        self.text_index = len(parts)
        self.text_started = False
        self.annotations = []

    async def _save_open(self) -> None:
        """Commit the open message and step that so far exist only in memory."""
        message, step = self.message, self.step
        assert message is not None and step is not None
        saved = {**message, "content": list(message["content"])}  # its text is saved when it closes
        await self.owned_write(lambda conn: self._insert_open(conn, saved, step))
        self.unsaved = False

    def _message_delta(self, content: list[dict[str, Any]]) -> None:
        assert self.message is not None
        self.emit(
            "thread.message.delta",
            {"id": self.message["id"], "object": "thread.message.delta", "delta": {"content": content}},
        )

    async def _text_delta(self, event: n.TextDelta) -> None:
        """A piece of the reply; its annotations ride on the same delta, as OpenAI sends them."""
        part: dict[str, Any] = {"index": self.text_index, "type": "text", "text": {"value": event.text}}
        if not self.text_started:
            part["text"]["annotations"] = []
            self.text_started = True
        if event.annotations:
            first = len(self.annotations)
            part["text"]["annotations"] = [{"index": first + i, **a} for i, a in enumerate(event.annotations)]
            self.annotations.extend(event.annotations)
        self.text += event.text
        self._message_delta([part])
        if self.unsaved and time.monotonic() - self.opened_at >= OPEN_WRITE_AFTER_S:
            await self._save_open()

    def _close_in_memory(self, done: n.TextDone) -> tuple[dict, dict]:
        """Finish the open message and its step in memory; the caller saves them with _save_closed and then emits
        _emit_closed."""
        message, step = self.message, self.step
        assert message is not None and step is not None
        if not self.text_started:
            self.text_started = True
            self._message_delta([{"index": self.text_index, "type": "text", "text": {"value": "", "annotations": []}}])
        message["content"].append({"type": "text", "text": {"value": self.text, "annotations": self.annotations}})
        ts = now()
        message["status"] = done.status
        if done.status == "completed":
            message["completed_at"] = ts
        else:
            message["incomplete_at"] = ts
            message["incomplete_details"] = {"reason": done.reason}
        _finish_step(step, "completed", ts)
        step["usage"] = _usage(done.usage)
        return message, step

    def _save_closed(self, conn: sa.Connection, message: dict, step: dict) -> dict:
        if self.unsaved:
            self._insert_open(conn, message, step)
            return message
        stored = Store.fetch(conn, schema.messages, message["id"], lock=True)
        merged = merge_owned(stored, message, MESSAGE_FIELDS)
        if stored is not None:  # the client may have deleted it meanwhile
            Store.update(conn, schema.messages, merged)
        Store.update(conn, schema.run_steps, step)
        return merged

    def _emit_closed(self, message: dict, step: dict) -> None:
        self.emit(f"thread.message.{'completed' if message['status'] == 'completed' else 'incomplete'}", message)
        self.emit(f"thread.run.step.{step['status']}", step)

    async def _close_message(self, done: n.TextDone) -> None:
        message, step = self._close_in_memory(done)

        def save(conn: sa.Connection) -> dict:
            saved = self._save_closed(conn, message, step)
            if done.usage is not None:  # the reply ended the turn (length, content_filter)
                self._record_usage(conn, done.usage)
            return saved

        message = await self.owned_write(save)
        self.message = self.step = None
        self.unsaved = False
        self._emit_closed(message, step)

    # -- tool calls -----------------------------------------------------------------------------------------------

    def _step_delta(self, index: int, payload: dict[str, Any]) -> None:
        assert self.step is not None
        self.emit(
            "thread.run.step.delta",
            {
                "id": self.step["id"],
                "object": "thread.run.step.delta",
                "delta": {"step_details": {"type": "tool_calls", "tool_calls": [{"index": index, **payload}]}},
            },
        )

    async def _tool_started(self, event: n.ToolCallStarted) -> None:
        if self.step is None:
            step = step_object(self.run, "tool_calls", {"type": "tool_calls", "tool_calls": []})

            def save(conn: sa.Connection) -> None:
                Store.insert(conn, schema.run_steps, step, run_id=self.execution_id, thread_id=self.run["thread_id"])

            await self.owned_write(save)
            self.step = step
            self.records = {}
            self.emit("thread.run.step.created", step)
            self.emit("thread.run.step.in_progress", step)
        if event.first_delta is not None:
            self._step_delta(event.index, event.first_delta)
        else:
            function = {"name": event.name, "arguments": "", "output": None}
            self._step_delta(event.index, {"id": event.call_id, "type": "function", "function": function})

    def _record_calls(self, turn_usage: n.Usage) -> dict[str, Any]:
        step = self.step
        assert step is not None
        step["step_details"]["tool_calls"] = [self.records[i] for i in sorted(self.records)]
        step["usage"] = _usage(turn_usage)
        return step

    def _append_conversation_items(self, conn: sa.Connection, step: dict[str, Any]) -> None:
        """Append the conversation items equivalent to the tool calls `step` records to the thread's log, in the
        transaction that saves the step (docs/architecture.md, "one store"): function calls as `function_call`
        items with their `function_call_output` items, once the outputs are submitted (services/runs.py; a run
        cancelled or expired while waiting leaves no unanswered call in the log), a file_search
        call as a `file_search_call` item with its results, a code_interpreter call as a `code_interpreter_call`
        item with its code and outputs."""
        rows = [row for call in step["step_details"]["tool_calls"] if (row := tool_call_item(call, self.run))]
        if rows:
            log.append(conn, self.run["thread_id"], rows, now())

    async def _tool_turn_done(self, event: n.ToolTurnDone) -> None:
        step = self._record_calls(event.usage)
        _finish_step(step, "completed", now())

        def save(conn: sa.Connection) -> None:
            Store.update(conn, schema.run_steps, step)
            self._append_conversation_items(conn, step)
            self._record_usage(conn, event.usage)
            executions.save_state(conn, schema.runs, self.execution_id, self.state)

        await self.owned_write(save)
        self.emit("thread.run.step.completed", step)
        self.step = None

    async def _requires_action(self, event: n.FunctionCallsPending) -> None:
        step = self._record_calls(event.usage)
        calls = [
            {"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in event.calls
        ]

        def mutate(run: dict, conn: sa.Connection) -> dict[str, Any]:
            run["status"] = "requires_action"
            run["required_action"] = {"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": calls}}
            run["usage"] = _usage(event.total)
            Store.update(conn, schema.run_steps, step)
            self._append_conversation_items(conn, step)
            self._record_usage(conn, event.usage)
            return executions.state_columns(self.state, release=True)

        run = await self._transition(("in_progress",), mutate)
        if run is None:
            await self._lost_run()
            raise n.Stop
        self.run = run
        self.emit("thread.run.requires_action", run)
        self.step = None

    # -- usage ----------------------------------------------------------------------------------------------------

    def _usage_ids(self) -> dict[str, Any]:
        run = self.run
        return {
            "api_key_id": self.state.get("api_key_id"),
            "assistant_id": run.get("assistant_id"),
            "thread_id": run.get("thread_id"),
            "run_id": self.execution_id,
        }

    def _provider_name(self) -> str | None:
        try:
            return self.rt.providers.route_for(self.run["model"]).provider
        except Exception:  # an unroutable model never reaches a provider; the name is only informative
            return None

    def _record_usage(self, conn: sa.Connection, turn: n.Usage | None, *, estimated: bool = False) -> None:
        """One usage row for the model call that ended a turn, in the transaction that saves the turn, with what
        its prompt was made of (the context source's `prompt_parts`); plus the turn's file_search calls and the
        thread's code-interpreter session (store/usage.py)."""
        parts = self.state.pop("prompt_parts", None)
        if turn is None:
            return
        if not (turn.prompt_tokens or turn.completion_tokens) and parts:
            # The provider reported no usage: count what was sent and the reply, as for an interrupted call.
            reply = count_tokens(self.text) if self.message is not None else 0
            turn = n.Usage(sum(parts.values()), reply, turn.latency_ms)
            estimated = True
        at = self.rt.clock.now()
        ids = self._usage_ids()
        data: dict[str, Any] = {"prompt": parts} if parts else {}
        if estimated:
            data["estimated"] = True
        usage_records.record(
            conn,
            "completion",
            at,
            model=self.run.get("model"),
            provider=self._provider_name(),
            input_tokens=turn.prompt_tokens,
            output_tokens=turn.completion_tokens,
            latency_ms=turn.latency_ms,
            data=data or None,
            **ids,
        )
        tool_step = self.step is not None and self.step.get("type") == "tool_calls"
        kinds = [call.get("type") for call in self.records.values()] if tool_step else []
        if searches := kinds.count("file_search"):
            calls = (self.state.get("references") or {}).get("file_search") or []
            refs = calls[-searches:] if len(calls) >= searches else [{}] * searches
            usage_records.record_file_searches(conn, at, refs, **ids)
        if "code_interpreter" in kinds:
            usage_records.open_session(conn, ids.pop("thread_id"), at, **ids)

    def _record_interrupted(self, conn: sa.Connection, ending: str) -> None:
        """A model call cut short (cancel, expiry, or a failure once the reply or calls had begun) never reports
        its usage: record its estimate (the prompt as counted when built, the reply so far), flagged `estimated`."""
        parts = self.state.get("prompt_parts")
        if not parts:
            return
        if ending not in ("cancelled", "expired", "failed") or (
            ending == "failed" and self.message is None and self.step is None
        ):
            self.state.pop("prompt_parts", None)
            return
        reply = count_tokens(self.text) if self.message is not None else 0
        self._record_usage(conn, n.Usage(sum(parts.values()), reply), estimated=True)

    # -- endings -------------------------------------------------------------------------------------------------

    def _close_open(self, conn: sa.Connection, ending: str, ts: int, events: list[tuple[str, dict]]) -> None:
        """Close the open message (the run's other open steps and messages are closed out by runs.end)."""
        if self.message is not None and self.step is not None and self.unsaved:
            self._insert_open(conn, self.message, self.step)  # closed below like a saved one
            self.unsaved = False
        if self.message is not None:
            if self.message["status"] == "in_progress":  # else _close_in_memory got as far as closing it
                self.message["content"].append(
                    {"type": "text", "text": {"value": self.text, "annotations": self.annotations}}
                )
            reason = runs.CLOSE_OUT[ending][1]
            self.message.update(
                status="incomplete", completed_at=None, incomplete_at=ts, incomplete_details={"reason": reason}
            )
            stored = Store.fetch(conn, schema.messages, self.message["id"], lock=True)
            message = merge_owned(stored, self.message, MESSAGE_FIELDS)
            if stored is not None:
                Store.update(conn, schema.messages, message)
            events.append(("thread.message.incomplete", message))
        self.message = self.step = None

    def _end_mutation(
        self, status: str, total: n.Usage, fields: dict[str, Any], events: list[tuple[str, dict]]
    ) -> Callable[[dict, sa.Connection], dict[str, Any]]:
        """The change that ends the run as `status` (inside the caller's transaction); the events to emit after its
        commit, before thread.run.<status>, are appended to `events`. Returns the columns to save with the run."""

        def mutate(run: dict, conn: sa.Connection) -> dict[str, Any]:
            ts = now()
            self._record_interrupted(conn, status)
            self._close_open(conn, status, ts, events)
            cols = runs.end(conn, run, status, ts, events, usage=_usage(total), **fields)
            return {**cols, **executions.state_columns(self.state)}

        return mutate

    def _total(self) -> n.Usage:
        return n.Usage(self.state.get("prompt_tokens", 0), self.state.get("completion_tokens", 0))

    async def _end(self, status: str, total: n.Usage | None = None, **fields: Any) -> None:
        if status == "cancelled":
            current = await self._current()
            if current and current["status"] == "cancelling":
                self.emit("thread.run.cancelling", current)
        events: list[tuple[str, dict]] = []
        mutate = self._end_mutation(status, total or self._total(), fields, events)
        run = await self._transition(ENDS_FROM[status], mutate)
        if run is None:
            await self._lost_run()
            return
        self._ended(run, events)

    def _ended(self, run: dict[str, Any], events: list[tuple[str, dict]]) -> None:
        self.run = run
        metrics.run_finished(run)
        for name, data in events:
            self.emit(name, data)
        self.emit(f"thread.run.{run['status']}", run)

    async def _lost_run(self) -> None:
        """Someone else moved the run (cancel, expiry sweep): report where it is now."""
        current = await self._current()
        if current is None:
            return
        if current["status"] == "cancelling":
            self.run = current
            await self._end("cancelled")
        elif current["status"] in runs.TERMINAL:
            self.emit(f"thread.run.{current['status']}", current)

    async def _finished(self, event: n.Finished) -> None:
        if event.text is not None:
            await self._complete_with_message(event.text, event.total)
            return
        fields: dict[str, Any] = {}
        if event.status == "failed" and event.error is not None:
            fields["last_error"] = {"code": event.error.code, "message": event.error.message}
        elif event.status == "incomplete":
            fields["incomplete_details"] = {"reason": event.reason}
        await self._end(event.status, event.total, **fields)

    async def _complete_with_message(self, done: n.TextDone, total: n.Usage) -> None:
        """Close the reply message (completed) and complete the run in one transaction; the events follow its
        commit in the order of a closed message, then the run's completion."""
        message, step = self._close_in_memory(done)
        events: list[tuple[str, dict]] = []
        mutate = self._end_mutation("completed", total, {}, events)

        def save(conn: sa.Connection) -> tuple[dict, dict]:
            merged = self._save_closed(conn, message, step)
            self._record_usage(conn, done.usage)
            run = Store.fetch(conn, schema.runs, self.execution_id, lock=True)
            assert run is not None  # owned_write found it in_progress under our lease
            self.message = self.step = None  # saved above: the run's ending must not close them again
            executions.save(conn, schema.runs, run, **mutate(run, conn))
            return merged, run

        try:
            merged, run = await self.owned_write(save)
        except BaseException:
            self.message, self.step = message, step  # not committed: whoever ends the run closes them
            raise
        self.unsaved = False
        self._emit_closed(merged, step)
        self._ended(run, events)
