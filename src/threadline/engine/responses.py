"""The Responses projection: neutral events → output items, the `responses` row and `response.*` stream events
numbered by `sequence_number` (the context source is engine/response_context.py).

Event orders follow the contract (../shared/docs/responses-contract.md §3.3): a reply is a `message` item
(`output_item.added`, `content_part.added`, `output_text.delta`*, `output_text.done`, `content_part.done`,
`output_item.done`), a function call a `function_call` item (`function_call_arguments.delta`* / `.done`), server
tools their `file_search_call` / `code_interpreter_call` items; the end is `response.completed` (the full output),
`response.incomplete`, or an `error` event (nested and flat) followed by `response.failed`. A response that ends
on function calls is `completed`: the next request continues it with `previous_response_id` or the conversation.

Writes go through store/executions.py on the `responses` table, as the Assistants projection's go on `runs`:
the claim, owned writes under the lease, one guarded transition for the end. A stored response on a conversation
appends its input items and then its output items to the conversation's log in the transaction that ends it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import orjson
import sqlalchemy as sa

from .. import ids
from ..store import Store, executions, now, response_events, schema
from ..store import usage as usage_records
from ..tenancy import current_project
from ..tokens import count_tokens
from . import neutral as n
from .projection import Prepare
from .response_context import execution_spec
from .runtime import EngineRuntime

T = TypeVar("T")

TERMINAL = ("completed", "failed", "cancelled", "incomplete")
# The statuses each ending may come from (a response never waits for tool outputs; cancel ends it directly).
ENDS_FROM = {
    "completed": ("in_progress",),
    "incomplete": ("in_progress",),
    "failed": ("in_progress", "queued"),
    "cancelled": ("in_progress",),
}
# Error codes a Response may carry (the spec's ResponseErrorCode); a provider's other codes become server_error.
ERROR_CODES = {
    "server_error",
    "rate_limit_exceeded",
    "invalid_prompt",
    "vector_store_timeout",
    "invalid_image",
    "invalid_image_format",
    "invalid_base64_image",
    "invalid_image_url",
    "image_too_large",
    "image_too_small",
    "image_parse_error",
    "image_content_policy_violation",
    "invalid_image_mode",
    "image_file_too_large",
    "unsupported_image_media_type",
    "empty_image_file",
    "failed_to_download_image",
    "image_file_not_found",
}
# A background response's streamed reply saves its recorded deltas at least this often, for resumed streams.
RECORD_EVERY_S = 0.25
INCLUDE_FILE_SEARCH_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"


class Sink(Protocol):
    """Where a response's events go: (event type, payload) with `type` and `sequence_number` already set."""

    def emit(self, event: str, data: Any) -> None: ...

    def close(self) -> None: ...


# -- output items ------------------------------------------------------------------------------------------------


def output_annotation(a: dict[str, Any]) -> dict[str, Any] | None:
    """An engine annotation (Assistants shape, a span) as an output_text annotation (contract §7.2)."""
    if a.get("type") == "file_citation":
        return {
            "type": "file_citation",
            "file_id": a["file_citation"]["file_id"],
            "filename": a.get("filename") or "",
            "index": a["end_index"],
        }
    if a.get("type") == "container_file_citation":
        keys = ("container_id", "file_id", "filename", "start_index", "end_index")
        return {"type": "container_file_citation", **{k: a[k] for k in keys}}
    if a.get("type") == "file_path":
        return {"type": "file_path", "file_id": a["file_path"]["file_id"], "index": a["start_index"]}
    return None


def image_url(container_id: str, file_id: str) -> str:
    """Where an image the code wrote is downloaded: its container file's content (a Files-API file's otherwise)."""
    if file_id.startswith(ids.PREFIXES["container_file"]):
        return f"/v1/containers/{container_id}/files/{file_id}/content"
    return f"/v1/files/{file_id}/content"


def file_search_item(call: dict[str, Any], arguments: str) -> dict[str, Any]:
    """A finished Assistants file_search call as a file_search_call item (results kept; `include` hides them)."""
    queries = (call.get("file_search") or {}).get("queries")
    if not isinstance(queries, list):
        try:
            query = orjson.loads(arguments or "{}").get("query")
        except (orjson.JSONDecodeError, AttributeError):
            query = None
        queries = [query] if isinstance(query, str) else []
    results = []
    for r in (call.get("file_search") or {}).get("results") or []:
        text = "".join(c.get("text", "") for c in r.get("content") or [])
        results.append(
            {
                "file_id": r.get("file_id"),
                "filename": r.get("file_name"),
                "score": r.get("score"),
                "text": text,
                "attributes": r.get("attributes") or {},
            }
        )
    return {"queries": [q for q in queries if isinstance(q, str)], "results": results}


def apply_include(item: dict[str, Any], include: list[str]) -> dict[str, Any]:
    kind = item.get("type")
    if kind == "file_search_call" and "file_search_call.results" not in include:
        return {**item, "results": None}
    if kind == "code_interpreter_call" and "code_interpreter_call.outputs" not in include:
        return {**item, "outputs": None}
    return item


def error_event(message: str, code: str) -> dict[str, Any]:
    """An `error` stream event's payload: nested as live traffic sends it (the Python SDK raises on it), with
    code, message and param mirrored at the top as the spec's flat shape has them (contract §3.7)."""
    return {
        "error": {"type": code, "code": code, "message": message, "param": None},
        "code": code,
        "message": message,
        "param": None,
    }


def usage_of(total: n.Usage) -> dict[str, Any]:
    return {
        "input_tokens": total.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": total.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": total.prompt_tokens + total.completion_tokens,
    }


def close_output(output: list[dict[str, Any]]) -> None:
    """Items still in progress when a response ends without finishing them become incomplete."""
    for item in output:
        if item.get("status") in ("in_progress", "searching", "interpreting"):
            item["status"] = "incomplete"


# -- the projection ------------------------------------------------------------------------------------------------


class ResponsesProjection:
    """One response's row, output items and `response.*` events (implements engine.projection.Projection).

    `record`: keep the events in `response_events` (background responses, so GET ?stream=true can replay and
    resume them)."""

    table = schema.responses

    def __init__(self, runtime: EngineRuntime, response_id: str, sink: Sink, owner: str, *, record: bool) -> None:
        self.rt = runtime
        self.execution_id = response_id
        self.sink = sink
        self.owner = owner
        self.record = record
        self.state: dict[str, Any] = {}
        self.project: str | None = None  # the response's project, known once it is claimed
        self.response: dict[str, Any] = {}
        self.output: list[dict[str, Any]] = []
        self.seq = 0  # the next sequence_number
        self.unrecorded: list[tuple[int, str]] = []  # events not yet in response_events
        self.message: dict[str, Any] | None = None  # the open message item
        self.message_index = 0
        self.annotations = 0  # annotations of the open message's text so far
        self.calls: dict[int, int] = {}  # call index in the turn -> output index
        self.cut_short = False  # a reply ended at max_output_tokens
        self.flushed_at = time.monotonic()  # when recorded events were last saved
        self.thread_id: str | None = None  # the conversation's threads row, if any
        self.turn_text = ""  # the current model call's reply so far (an interrupted call's usage estimate)
        self.turn_begun = False  # the current model call has streamed a reply or calls
        self.turn_servers: list[str] = []  # the server tools the current model call ran (usage rows)
        self.ending: str | None = None  # how the loop ended the response (before expired became failed)
        self.unsaved_turn: n.Usage | None = None  # a finished model call whose write has not committed yet

    # -- events -----------------------------------------------------------------------------------------------------

    def emit(self, event: str, payload: dict[str, Any]) -> None:
        self.sink.emit(event, self._number(event, payload))

    def _number(self, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The event with its type and the next sequence_number (recorded for a background response)."""
        data = {"type": event, "sequence_number": self.seq, **payload}
        self.seq += 1
        if self.record:
            self.unrecorded.append((data["sequence_number"], orjson.dumps(data).decode()))
        return data

    def flush_events(self, conn: sa.Connection) -> None:
        """Save the recorded events not saved yet, inside the caller's transaction."""
        if self.unrecorded:
            response_events.append(conn, self.execution_id, self.unrecorded)
            self.unrecorded = []

    def _snapshot(self) -> dict[str, Any]:
        include = self.state.get("response_include", [])
        return {**self.response, "output": [apply_include(i, include) for i in self.output]}

    def _item(self, item: dict[str, Any]) -> dict[str, Any]:
        return apply_include(item, self.state.get("response_include", []))

    def report_unrecorded(self, failure: n.Failure, storage_full: bool) -> None:
        self.emit("error", error_event(failure.message, "insufficient_storage" if storage_full else "server_error"))

    def close(self) -> None:
        self.sink.close()

    # -- database ---------------------------------------------------------------------------------------------------

    async def owned_write(self, fn: Callable[[sa.Connection], T]) -> T:
        def write(conn: sa.Connection) -> T:
            result = fn(conn)
            self.flush_events(conn)
            return result

        try:
            return await self.rt.store.run_write(
                executions.owned_write, self.rt.store, schema.responses, self.execution_id, self.owner, write
            )
        except executions.LeaseLost:
            await self._lost()
            raise n.Stop from None

    async def _save_output(self, turn: n.Usage | None = None) -> None:
        """Save the output so far (and the usage of the model call `turn` ended, if given) in one write."""
        response = {**self.response, "output": self.output}

        def save(conn: sa.Connection) -> None:
            if turn is not None:
                self._record_usage(conn, turn)
            stored = Store.fetch(conn, schema.responses, self.execution_id)
            merged = {**response, "metadata": (stored or response).get("metadata")}
            executions.save(conn, schema.responses, merged, state=orjson.dumps(self.state).decode())

        self.unsaved_turn = turn  # recorded by _lost if the write finds the response ended meanwhile
        await self.owned_write(save)
        self.unsaved_turn = None

    async def flush_recorded(self) -> None:
        """Save recorded events outside a state change (e.g. a long reply's deltas, for resumed streams)."""
        self.flushed_at = time.monotonic()
        if self.record and self.unrecorded:
            await self.owned_write(lambda conn: None)

    # -- the claim ------------------------------------------------------------------------------------------------

    def spec(self) -> n.ExecutionSpec:
        return execution_spec(self.response)

    def _claim(self, response: dict, conn: sa.Connection, prepare: Prepare) -> None:
        response["status"] = "in_progress"
        lease_until = self.rt.clock.now() + self.rt.settings.run_lease_s
        self.state, self.project = executions.take_lease(
            conn, schema.responses, response["id"], self.owner, lease_until
        )
        current_project.set(self.project)  # the first turn's context is read as the response's project
        self.response = response
        self.output = list(response.get("output") or [])
        t = schema.responses
        self.thread_id = conn.execute(sa.select(t.c.thread_id).where(t.c.id == response["id"])).scalar()
        if self.record:
            self.seq = response_events.next_seq(conn, response["id"])
        prepare(conn, self.spec(), self.state)

    def start_in(self, conn: sa.Connection, obj: dict[str, Any], prepare: Prepare) -> None:
        self.execution_id = obj["id"]
        self._claim(obj, conn, prepare)
        executions.save(conn, schema.responses, obj)

    async def claim(self, prepare: Prepare) -> n.ExecutionSpec | None:
        def mutate(response: dict, conn: sa.Connection) -> None:
            self._claim(response, conn, prepare)

        response = await self.rt.store.run_write(
            executions.transition, self.rt.store, schema.responses, self.execution_id, ("queued",), mutate
        )
        if response is None:
            return None
        self.response = response
        return self.spec()

    async def started(self) -> None:
        self.emit("response.in_progress", {"response": self._snapshot()})
        await self.flush_recorded()

    # -- neutral events ---------------------------------------------------------------------------------------------

    async def handle(self, event: n.Happening) -> None:
        if isinstance(event, n.TextDelta):
            await self._text_delta(event)
        elif isinstance(event, n.TextStarted):
            self.turn_begun = True
            self._open_message()
        elif isinstance(event, n.TextDone):
            self._close_message(event)
            await self._save_output(event.usage)  # with usage: the reply ended the model call (length, filter)
            self._emit_message_done()
        elif isinstance(event, n.ToolCallStarted):
            self.turn_begun = True
            self._tool_started(event)
        elif isinstance(event, n.ToolArgumentsDelta):
            index = self.calls.get(event.index)
            if index is not None:
                item_id = self.output[index]["id"]
                self.output[index]["arguments"] += event.delta
                self.emit(
                    "response.function_call_arguments.delta",
                    {"item_id": item_id, "output_index": index, "delta": event.delta},
                )
        elif isinstance(event, n.ToolCallDone):
            if event.server is not None:
                self.turn_servers.append(event.server)
            self._tool_done(event)
        elif isinstance(event, n.ServerToolProgress):
            self._server_progress(event)
        elif isinstance(event, n.ServerToolDone):
            self._server_done(event)
            await self._save_output()
        elif isinstance(event, n.ToolTurnDone):
            self.calls = {}
            await self._save_output(event.usage)
        elif isinstance(event, n.FunctionCallsPending):
            self.calls = {}
            await self._end("completed", event.total, turn=event.usage)
        elif isinstance(event, n.Finished):
            await self._finished(event)

    def _open_message(self) -> None:
        item = {
            "id": ids.new_id("message"),
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        self.message_index = len(self.output)
        self.output.append(item)
        self.message = item
        self.annotations = 0
        self.emit("response.output_item.added", {"output_index": self.message_index, "item": dict(item, content=[])})
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        item["content"].append(part)
        self.emit(
            "response.content_part.added",
            {"item_id": item["id"], "output_index": self.message_index, "content_index": 0, "part": dict(part)},
        )

    async def _text_delta(self, event: n.TextDelta) -> None:
        item = self.message
        if item is None:
            return
        part = item["content"][0]
        part["text"] += event.text
        self.turn_text += event.text
        where = {"item_id": item["id"], "output_index": self.message_index, "content_index": 0}
        self.emit("response.output_text.delta", {**where, "delta": event.text, "logprobs": []})
        for a in event.annotations:
            converted = output_annotation(a)
            if converted is not None and converted["type"] == "file_citation" and not converted["filename"]:
                converted["filename"] = self._filename(converted["file_id"])
            if converted is None:
                continue
            part["annotations"].append(converted)
            self.emit(
                "response.output_text.annotation.added",
                {**where, "annotation_index": self.annotations, "annotation": converted},
            )
            self.annotations += 1
        if self.record and time.monotonic() - self.flushed_at >= RECORD_EVERY_S:
            await self.flush_recorded()

    def _filename(self, file_id: str) -> str:
        """The name of a file this response's file_search found (its references in the working state)."""
        for ref in (self.state.get("references") or {}).get("file_search", []):
            for result in ref.get("results", []):
                if result.get("file_id") == file_id:
                    return result.get("filename") or ""
        return ""

    def _close_message(self, done: n.TextDone) -> None:
        item = self.message
        if item is None:
            return
        item["status"] = done.status
        if done.status == "incomplete" and done.reason == "max_tokens":
            self.cut_short = True

    def _emit_message_done(self) -> None:
        item = self.message
        if item is None:
            return
        part = item["content"][0]
        where = {"item_id": item["id"], "output_index": self.message_index, "content_index": 0}
        self.emit("response.output_text.done", {**where, "text": part["text"], "logprobs": []})
        self.emit("response.content_part.done", {**where, "part": dict(part)})
        self.emit("response.output_item.done", {"output_index": self.message_index, "item": self._item(item)})
        self.message = None

    def _tool_started(self, event: n.ToolCallStarted) -> None:
        index = len(self.output)
        self.calls[event.index] = index
        if event.server is None:
            item = {
                "id": ids.new_id("function_call"),
                "type": "function_call",
                "status": "in_progress",
                "arguments": "",
                "call_id": event.call_id,
                "name": event.name,
            }
            self.output.append(item)
            self.emit("response.output_item.added", {"output_index": index, "item": dict(item)})
            return
        if event.server == "file_search":
            item = {
                "id": ids.new_id("file_search_call"),
                "type": "file_search_call",
                "status": "in_progress",
                "queries": [],
                "results": None,
            }
        else:
            item = {
                "id": ids.new_id("code_interpreter_call"),
                "type": "code_interpreter_call",
                "status": "in_progress",
                "code": "",
                "container_id": self.state.get("container_id") or "",
                "outputs": [],
            }
        item["_call_id"] = event.call_id
        self.output.append(item)
        self.emit("response.output_item.added", {"output_index": index, "item": self._public(item)})
        self.emit(f"response.{event.server}_call.in_progress", {"item_id": item["id"], "output_index": index})

    @staticmethod
    def _public(item: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in item.items() if not k.startswith("_")}

    def _tool_done(self, event: n.ToolCallDone) -> None:
        index = self.calls.get(event.index)
        if index is None:
            return
        item = self.output[index]
        if event.server is None:
            item["arguments"] = event.arguments
            item["status"] = "completed"
            where = {"item_id": item["id"], "output_index": index}
            done = {**where, "name": event.name, "arguments": event.arguments}
            self.emit("response.function_call_arguments.done", done)
            self.emit("response.output_item.done", {"output_index": index, "item": dict(item)})
        else:
            item["_arguments"] = event.arguments
            if event.server == "file_search":
                item["status"] = "searching"
                self.emit("response.file_search_call.searching", {"item_id": item["id"], "output_index": index})

    def _server_progress(self, event: n.ServerToolProgress) -> None:
        """Seam for the code_interpreter item: its code and outputs as they arrive (Assistants step-delta shape)."""
        index = self.calls.get(event.index)
        if index is None:
            return
        item = self.output[index]
        if item["type"] != "code_interpreter_call":
            return
        ci = event.payload.get("code_interpreter") or {}
        delta = ci.get("input")
        if delta:
            item["code"] = (item.get("code") or "") + delta
            self.emit(
                "response.code_interpreter_call_code.delta",
                {"item_id": item["id"], "output_index": index, "delta": delta},
            )
        if "input" in ci and item["status"] == "in_progress":  # the tool sends the code as it starts running it
            self._interpreting(item, index)

    def _interpreting(self, item: dict[str, Any], index: int) -> None:
        where = {"item_id": item["id"], "output_index": index}
        item["status"] = "interpreting"
        self.emit("response.code_interpreter_call_code.done", {**where, "code": item["code"]})
        self.emit("response.code_interpreter_call.interpreting", where)

    def _server_done(self, event: n.ServerToolDone) -> None:
        index = self.calls.get(event.index)
        if index is None:
            return
        item = self.output[index]
        where = {"item_id": item["id"], "output_index": index}
        if item["type"] == "file_search_call":
            item.update(file_search_item(event.call, item.pop("_arguments", "")))
            item["status"] = "completed"
            self.emit("response.file_search_call.completed", where)
        else:
            ci = event.call.get("code_interpreter") or {}
            item["code"] = ci.get("input", item.get("code") or "")
            if item["status"] == "in_progress":
                self._interpreting(item, index)
            outputs = []
            for o in ci.get("outputs") or []:
                if o.get("type") == "logs":
                    outputs.append({"type": "logs", "logs": o.get("logs", "")})
                elif o.get("type") == "image":
                    outputs.append({"type": "image", "url": image_url(item["container_id"], o["image"]["file_id"])})
            item["outputs"] = outputs
            item["status"] = "completed"
            item.pop("_arguments", None)
            self.emit("response.code_interpreter_call.completed", where)
        item.pop("_call_id", None)
        self.emit("response.output_item.done", {"output_index": index, "item": self._item(item)})

    # -- endings --------------------------------------------------------------------------------------------------

    async def _finished(self, event: n.Finished) -> None:
        if event.text is not None:
            self._close_message(event.text)
            self._emit_message_done()
        status = event.status
        self.ending = status  # an expired response ends `failed`; its call in flight counts as interrupted
        fields: dict[str, Any] = {}
        if status == "expired":
            status = "failed"
            fields["error"] = {"code": "server_error", "message": "The response expired."}
        if status == "completed" and self.cut_short:
            status = "incomplete"
        if status == "incomplete":
            fields["incomplete_details"] = {"reason": "max_output_tokens"}
        if status == "failed":
            error = event.error or n.Failure("server_error", "The response failed.")
            code = error.code if error.code in ERROR_CODES else "server_error"
            fields.setdefault("error", {"code": code, "message": error.message})
            self.emit("error", error_event(error.message, error.code or "server_error"))
        turn = event.text.usage if event.text is not None else None
        await self._end(status, event.total, turn=turn, **fields)

    def _end_mutation(
        self,
        status: str,
        total: n.Usage,
        fields: dict[str, Any],
        terminal: list[dict[str, Any]],
        turn: n.Usage | None,
    ) -> Callable[[dict, sa.Connection], dict[str, Any]]:
        def mutate(response: dict, conn: sa.Connection) -> dict[str, Any]:
            ts = now()
            if turn is not None:
                self._record_usage(conn, turn)
            else:
                self._record_interrupted(conn, self.ending or status)
            for item in self.output:
                item.pop("_call_id", None)
                item.pop("_arguments", None)
            if status != "completed":
                close_output(self.output)
            response.update(status=status, output=self.output, usage=usage_of(total), **fields)
            response["completed_at"] = ts if status == "completed" else None
            t = schema.responses
            thread_id = conn.execute(sa.select(t.c.thread_id).where(t.c.id == self.execution_id)).scalar()
            if thread_id is not None and status == "completed" and response.get("store") is not False:
                from ..services.response_create import append_to_conversation  # noqa: PLC0415

                append_to_conversation(conn, thread_id, self.state, self.output)
            self.response = response
            seq, pending = self.seq, list(self.unrecorded)
            if status != "cancelled":  # the spec has no cancelled event: a cancelled stream just ends
                terminal.append(self._number(f"response.{status}", {"response": self._snapshot()}))
            try:
                self.flush_events(conn)
            except BaseException:
                self.seq, self.unrecorded = seq, pending
                terminal.clear()
                raise
            return {**executions.state_columns(self.state, release=True)}

        return mutate

    async def _end(self, status: str, total: n.Usage, turn: n.Usage | None = None, **fields: Any) -> None:
        """End the response as `status` in one guarded transition (its conversation items, recorded events and
        the usage of the model call `turn` that ended it with it); the terminal event is sent after the commit."""
        terminal: list[dict[str, Any]] = []
        mutate = self._end_mutation(status, total, fields, terminal, turn)
        self.unsaved_turn = turn
        response = await self.rt.store.run_write(
            executions.transition, self.rt.store, schema.responses, self.execution_id, ENDS_FROM[status], mutate
        )
        if response is None:
            await self._lost()
            raise n.Stop
        self.unsaved_turn = None
        self.response = response
        for data in terminal:
            self.sink.emit(data["type"], data)
        if response.get("store") is False:  # executed and answered, but not kept

            def forget() -> None:
                with self.rt.store.write() as conn:
                    Store.delete(conn, schema.responses, self.execution_id)

            await asyncio.to_thread(forget)

    async def _lost(self) -> None:
        """Someone else ended the response (a cancel): report where it is now. A model call this process made
        was still made: its usage is recorded (as reported if the call had ended, else estimated)."""
        self.unrecorded = []
        turn, self.unsaved_turn = self.unsaved_turn, None
        if not self.state.get("prompt_parts") and turn is None:
            return

        def record() -> None:
            with self.rt.store.write() as conn:
                if turn is not None:
                    self._record_usage(conn, turn)
                else:
                    self._record_interrupted(conn, "cancelled")

        await asyncio.to_thread(record)

    # -- usage ----------------------------------------------------------------------------------------------------

    def _provider_name(self, model: str) -> str | None:
        try:
            return self.rt.providers.route_for(model).provider  # type: ignore[attr-defined]
        except Exception:  # an unroutable model never reaches a provider; the name is only informative
            return None

    def _record_usage(self, conn: sa.Connection, turn: n.Usage, *, estimated: bool = False) -> None:
        """One `completion` usage row for the model call that ended a turn, in the transaction that saves the
        turn, with what its prompt was made of (the context source's `prompt_parts`); plus the turn's file_search
        calls and its code-interpreter container session (store/usage.py)."""
        parts = self.state.pop("prompt_parts", None)
        if not (turn.prompt_tokens or turn.completion_tokens) and parts:
            # The provider reported no usage: count what was sent and the reply, as for an interrupted call.
            turn = n.Usage(sum(parts.values()), count_tokens(self.turn_text), turn.latency_ms)
            estimated = True
        at = self.rt.clock.now()
        prompt = self.response.get("prompt") or {}
        assistant = prompt.get("id") if str(prompt.get("id") or "").startswith("asst_") else None
        ids: dict[str, Any] = {
            "api_key_id": self.state.get("api_key_id"),
            "assistant_id": assistant,
            "thread_id": self.thread_id,
            "response_id": self.execution_id,
        }
        data: dict[str, Any] = {"prompt": parts} if parts else {}
        if estimated:
            data["estimated"] = True
        model = self.response.get("model")
        usage_records.record(
            conn,
            "completion",
            at,
            model=model,
            provider=self._provider_name(model) if model else None,
            input_tokens=turn.prompt_tokens,
            output_tokens=turn.completion_tokens,
            latency_ms=turn.latency_ms,
            data=data or None,
            **ids,
        )
        if searches := self.turn_servers.count("file_search"):
            calls = (self.state.get("references") or {}).get("file_search") or []
            refs = calls[-searches:] if len(calls) >= searches else [{}] * searches
            usage_records.record_file_searches(conn, at, refs, **ids)
        if "code_interpreter" in self.turn_servers:
            container = self.state.get("container_id") or self.execution_id
            usage_records.open_session(conn, ids.pop("thread_id"), at, container_id=container, **ids)
        self.turn_text, self.turn_begun, self.turn_servers = "", False, []

    def _record_interrupted(self, conn: sa.Connection, ending: str) -> None:
        """A model call cut short (cancel, expiry, or a failure once the reply or calls had begun) never reports
        its usage: record its estimate (the prompt as counted when built, the reply so far), flagged `estimated`."""
        parts = self.state.get("prompt_parts")
        if not parts:
            return
        if ending not in ("cancelled", "expired", "failed") or (ending == "failed" and not self.turn_begun):
            self.state.pop("prompt_parts", None)
            return
        self._record_usage(conn, n.Usage(sum(parts.values()), count_tokens(self.turn_text)), estimated=True)
