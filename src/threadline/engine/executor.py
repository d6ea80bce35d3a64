"""The run executor: drives one run from `queued` to a terminal state or `requires_action`.

Every transition is committed before its event is emitted. State changes made by others (cancel, expiry) are
respected through guarded updates: a transition only applies if the run is still in the expected status.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .. import logs, metrics
from ..providers.base import (
    ChatRequest,
    Finish,
    ProviderError,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    ToolSpec,
    Usage,
)
from ..store import Store, executions, now, runs, schema
from ..store.storage import is_disk_full
from .cancel import CancelSignal, PolledCancelSignal
from .context import PromptTooLarge, build_context
from .events import NullSink, error_payload
from .objects import assistant_message, step_object, strip_content, usage
from .tools import ServerTool, ToolContext, ToolFatal, ToolOutcome, function_spec

log = logging.getLogger("threadline.engine")
STORAGE_FULL_RUN = "The server's storage is full; the run could not save its results."

MAX_TURNS = 32
OWNER = f"{socket.gethostname()}:{secrets.token_hex(4)}"
# After a cancel or expiry, how long an interrupted tool may take to unwind before the run is finished anyway.
INTERRUPT_GRACE_S = 1.0
# A run nobody streams saves its open reply message at once only when the reply takes at least this long.
OPEN_WRITE_AFTER_S = 0.25
# Fields of an assistant message the executor owns; the rest (metadata) belongs to API clients.
MESSAGE_FIELDS = ("content", "status", "completed_at", "incomplete_at", "incomplete_details")

T = TypeVar("T")


class _Stop(Exception):
    """The run left in_progress underneath us (cancelled, expired) or finished; unwind quietly."""


class _Failure:
    """An exception raised by the provider stream, passed from the stream's reader task to the executor."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = object()  # the provider stream ended
_INTERRUPTED = object()  # a cancel or the expiry interrupted the wait for the provider


def merge_owned(current: dict[str, Any] | None, ours: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """The stored object with only `fields` taken from the writer's copy (the writer owns nothing else)."""
    if current is None:
        return ours
    merged = dict(current)
    for name in fields:
        if name in ours:
            merged[name] = ours[name]
    return merged


def _cancel_once(task: asyncio.Task) -> None:
    """Cancel `task` unless it is done or already being cancelled: a second cancel would interrupt its cleanup
    (closing the upstream connection) halfway."""
    if not task.done() and not task.cancelling():
        task.cancel()


async def _read_stream(stream: Any, queue: asyncio.Queue) -> None:
    """Read the provider stream in its own task (so a cancel can interrupt it anywhere) into `queue`."""
    try:
        async for event in stream:
            queue.put_nowait(event)
    except Exception as exc:
        queue.put_nowait(_Failure(exc))
    else:
        queue.put_nowait(_END)


class RunExecutor:
    def __init__(self, runtime: Any, signal: CancelSignal | None = None) -> None:
        self.rt = runtime
        self.store: Store = runtime.store
        self.signal: CancelSignal = signal or PolledCancelSignal(runtime.store)
        self.active: set[str] = set()  # runs an execution of this process drives now
        self._orphans: set[asyncio.Task] = set()  # interrupted tools still unwinding

    # -- database helpers (run in a worker thread) -----------------------------------------------------------

    async def db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    def _transition(self, run_id: str, expected: tuple[str, ...], mutate: Callable[[dict, Any], Any]) -> dict | None:
        return executions.transition(self.store, schema.runs, run_id, expected, mutate)

    def signal_cancel(self, run_id: str) -> None:
        """A cancel of `run_id` was committed (status `cancelling`); callable from any thread."""
        self.signal.notify(run_id)

    def keep_unwinding(self, task: asyncio.Task) -> None:
        """Hold a reference to an interrupted task that has not finished unwinding yet."""
        self._orphans.add(task)
        task.add_done_callback(self._orphans.discard)

    # -- entry point --------------------------------------------------------------------------------------------

    def job(self, sink: Any) -> _Job:
        """An execution for a run its creator starts in its own transaction (`_Job.start_in`), then passes to
        execute(). Call on the event loop."""
        return _Job(self, "", sink)

    async def execute(self, run_id: str, sink: Any = None, job: _Job | None = None) -> None:
        """Drive `run_id` until it ends or needs tool outputs; `job`: the one from job() that started it."""
        if job is not None:
            sink = job.sink
        sink = sink or NullSink()
        logs.run_id.set(run_id)
        job = job or _Job(self, run_id, sink)
        self.active.add(run_id)
        self.signal.watch(run_id, job.on_cancel)
        heartbeat = asyncio.create_task(job.heartbeat())
        try:
            await job.drive()
        except _Stop:
            pass
        except Exception as exc:  # a bug must fail the run, never leave it hanging
            full = is_disk_full(exc)
            if full:
                log.warning("run %s failed: storage full: %s", run_id, exc)
            else:
                log.exception("run %s crashed", run_id)
            message = STORAGE_FULL_RUN if full else f"Internal error while executing the run: {type(exc).__name__}"
            try:
                await job.fail("server_error", message)
            except Exception:  # the store itself failed: tell the client; recovery will mark the run later
                log.exception("could not record the failure of run %s", run_id)
                if full:
                    sink.emit("error", error_payload(STORAGE_FULL_RUN, "insufficient_storage", "insufficient_storage"))
                else:
                    sink.emit("error", error_payload("The server had an error while processing the run."))
        finally:
            heartbeat.cancel()
            job.close()
            self.signal.unwatch(run_id)
            self.active.discard(run_id)
            sink.close()


@dataclass
class _Turn:
    """A planned model call (see _Job._plan)."""

    provider: Any
    server: dict[str, ServerTool]
    configs: dict[str, dict]
    choice: str
    prompt_left: int | None
    build: Callable[[Any], Any]  # conn -> RunContext; raises PromptTooLarge


class _Job:
    """One execution of one run (from queued to requires_action or a terminal state)."""

    def __init__(self, ex: RunExecutor, run_id: str, sink: Any) -> None:
        self.ex = ex
        self.rt = ex.rt
        self.run_id = run_id
        self.sink = sink
        self.cancelled = False  # a cancel was requested
        self.expired = False  # expires_at passed
        self.stopped: asyncio.Future[None] = asyncio.get_running_loop().create_future()  # either of the two
        self.reader: asyncio.Task | None = None  # the task reading the provider stream, while a turn streams
        self.events: asyncio.Queue | None = None  # its events
        self._expiry: asyncio.TimerHandle | None = None
        self.run: dict[str, Any] = {}
        self.state: dict[str, Any] = {}
        self.step: dict[str, Any] | None = None  # open step
        self.message: dict[str, Any] | None = None  # open assistant message
        # The open message and its step exist only in memory (a run nobody streams saves them with the write that
        # closes them, or once the reply has taken OPEN_WRITE_AFTER_S); opened_at: time.monotonic() at opening.
        self.unsaved = False
        self.opened_at = 0.0
        self.started = False  # start_in() started the run in its creator's transaction
        self.first: Any = None  # the first turn's plan and prompt, from _prebuild
        self.thread: dict[str, Any] = {}
        self.assistant: dict[str, Any] = {}
        self.text = ""
        self.processor: Any = None
        self.text_index = 0
        self.text_started = False
        self.annotations: list[dict[str, Any]] = []  # of the open message's text, as streamed

    # -- interruption: cancel and expiry stop whatever the run waits for ------------------------------------------

    def on_cancel(self) -> None:
        self.cancelled = True
        self._interrupt()

    def on_expiry(self) -> None:
        self.expired = True
        self._interrupt()

    def _interrupt(self) -> None:
        if not self.stopped.done():
            self.stopped.set_result(None)
        if self.reader is not None:
            _cancel_once(self.reader)  # the provider generator closes its HTTP response: the upstream stops
        if self.events is not None:
            self.events.put_nowait(_INTERRUPTED)

    def _arm_expiry(self) -> None:
        expires_at = self.run.get("expires_at")
        if expires_at is not None and self._expiry is None:
            self._expiry = self.rt.clock.call_later(max(0.0, expires_at - self.rt.clock.time()), self.on_expiry)

    def close(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()

    async def interruptible(self, aw: Awaitable[T]) -> T:
        """Await `aw` unless the run is cancelled or expires first: then `aw` is cancelled, the run finished
        (cancelled / expired) and _Stop raised."""
        task = asyncio.ensure_future(aw)
        try:
            await asyncio.wait({task, self.stopped}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task.done() and not task.cancelled():
            return task.result()
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=INTERRUPT_GRACE_S)
        if not done:
            log.warning("run %s: an interrupted tool is still unwinding", self.run_id)
            self.ex.keep_unwinding(task)
        elif not task.cancelled() and task.exception() is not None:
            log.info("run %s: interrupted tool ended with %r", self.run_id, task.exception())
        await self.checkpoint()
        raise _Stop

    # -- guarded writes -----------------------------------------------------------------------------------------

    def _write_owned(self, fn: Callable[[Any], T]) -> T:
        return executions.owned_write(self.ex.store, schema.runs, self.run_id, OWNER, fn)

    async def owned_write(self, fn: Callable[[Any], T]) -> T:
        """Run `fn(conn)` in a write transaction holding the run's row lock, only while this executor still
        drives the run (in_progress under its lease); otherwise report where the run is and stop."""
        try:
            return await self.ex.db(self._write_owned, fn)
        except executions.LeaseLost:
            await self._lost_run()
            raise _Stop from None

    def emit(self, event: str, data: Any) -> None:
        if event.startswith("thread.run.step.") and event != "thread.run.step.delta":
            data = strip_content(data, self.state.get("include", []))
        self.sink.emit(event, data)

    async def heartbeat(self) -> None:
        lease = self.rt.settings.run_lease_s
        while True:
            await asyncio.sleep(lease / 3)
            try:
                until = self.rt.clock.now() + lease
                await self.ex.db(executions.renew_lease, self.ex.store, schema.runs, self.run_id, OWNER, until)
            except Exception:  # a missed beat is retried; the lease is generous
                log.warning("heartbeat for %s failed", self.run_id, exc_info=True)

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def _start(self, run: dict, conn: Any) -> None:
        """Mark `run` (queued, row-locked or just written in `conn`'s transaction) in_progress under this
        executor's lease, load what the run needs and build its first prompt, in that same transaction."""
        run["status"] = "in_progress"
        run["started_at"] = now()
        lease_until = self.rt.clock.now() + self.rt.settings.run_lease_s
        self.state = executions.take_lease(conn, schema.runs, run["id"], OWNER, lease_until)
        self.thread = Store.fetch(conn, schema.threads, run["thread_id"]) or {}
        self.assistant = Store.fetch(conn, schema.assistants, run["assistant_id"]) or {"id": run["assistant_id"]}
        self.run = run
        self.first = self._prebuild(conn)

    def start_in(self, conn: Any, run: dict) -> None:
        """Start `run`, which the caller has just inserted (queued) in `conn`'s write transaction, so that a run
        executed at once costs one transaction less; `execute(..., job=self)` drives it after the commit."""
        self.run_id = run["id"]
        self._start(run, conn)
        executions.save(conn, schema.runs, run)
        self.started = True

    async def drive(self) -> None:
        if self.started:
            run = self.run
        else:
            run = await self.ex.db(self.ex._transition, self.run_id, ("queued",), self._start)
            if run is None:
                current = await self.ex.db(self.ex.store.get, schema.runs, self.run_id)
                if current and current["status"] == "cancelling":
                    self.run = current
                    await self.finish_cancelled()
                return
        self.run = run
        self._arm_expiry()
        self.emit("thread.run.in_progress", run)
        first, self.first = self.first, None
        for _ in range(MAX_TURNS):
            if not await self.turn(first):
                return
            first = None
        await self.fail("server_error", f"The run stopped after {MAX_TURNS} model turns without a final answer.")

    def _save_state(self, conn: Any) -> None:
        executions.save_state(conn, schema.runs, self.run_id, self.state)

    async def checkpoint(self) -> None:
        if self.cancelled:
            await self.finish_cancelled()
            raise _Stop
        if self.expired or (self.run["expires_at"] is not None and self.rt.clock.now() >= self.run["expires_at"]):
            await self.finish_expired()
            raise _Stop

    # -- one model turn -----------------------------------------------------------------------------------------

    def _tools(self) -> tuple[list[ToolSpec], dict[str, ServerTool], dict[str, dict]]:
        specs: list[ToolSpec] = []
        server: dict[str, ServerTool] = {}
        configs: dict[str, dict] = {}
        for tool in self.run["tools"]:
            if tool["type"] == "function":
                specs.append(function_spec(tool))
                continue
            impl = self.rt.server_tools.get(tool["type"])
            if impl is None:
                continue
            specs.append(impl.spec(tool))
            server[impl.function_name] = impl
            configs[impl.function_name] = tool
        return specs, server, configs

    def _tool_choice(self, server: dict[str, ServerTool]) -> str:
        choice = self.run.get("tool_choice") or "auto"
        if isinstance(choice, str):
            return choice
        if choice.get("type") == "function":
            return choice["function"]["name"]
        for name, impl in server.items():
            if impl.type == choice.get("type"):
                return name
        return "auto"

    def _system_prompt(self, server: dict[str, ServerTool], configs: dict[str, dict]) -> str:
        parts = [self.run.get("instructions") or ""]
        parts += [impl.instructions(configs[name]) for name, impl in server.items()]
        return "\n\n".join(p for p in parts if p)

    def _plan(self) -> _Turn | tuple[str, ...]:
        """What the next model call needs (no I/O): the resolved provider, tools and a function that builds the
        prompt inside a given transaction; or how the run ends instead: ("fail", code, message) /
        ("incomplete", reason)."""
        try:
            provider, upstream = self.rt.providers.resolve(self.run["model"])
        except ProviderError as exc:
            return ("fail", exc.code, str(exc.message if hasattr(exc, "message") else exc))
        specs, server, configs = self._tools()
        choice = self._tool_choice(server)
        if choice == "none":
            specs = []
        if self.state.get("forced_done") and choice not in ("auto", "none"):
            choice = "auto"  # a forced tool is called once; afterwards the model answers
        used_prompt = self.state.get("prompt_tokens", 0)
        used_completion = self.state.get("completion_tokens", 0)
        max_prompt = self.run.get("max_prompt_tokens")
        max_completion = self.run.get("max_completion_tokens")
        completion_left = None if max_completion is None else max_completion - used_completion
        if completion_left is not None and completion_left <= 0:
            return ("incomplete", "max_completion_tokens")
        prompt_left = None if max_prompt is None else max_prompt - used_prompt
        if prompt_left is not None and prompt_left <= 0:
            return ("incomplete", "max_prompt_tokens")
        system_prompt = self._system_prompt(server, configs)

        def build(conn: Any) -> Any:
            return build_context(
                conn,
                self.rt,
                self.run,
                self.state,
                system_prompt=system_prompt,
                tools=specs,
                tool_choice=choice,
                upstream_model=upstream,
                images=provider.supports_images(upstream),
                context_window=self.rt.providers.context_window(self.run["model"]),
                prompt_budget=prompt_left,
                max_tokens=completion_left,
            )

        return _Turn(provider, server, configs, choice, prompt_left, build)

    def _prebuild(self, conn: Any) -> tuple[_Turn | tuple[str, ...], Any]:
        """The first turn's plan and prompt, built inside the transaction that starts the run (a prompt that cannot
        be built is returned as the exception, handled by turn() after the start has committed)."""
        plan = self._plan()
        if not isinstance(plan, _Turn):
            return plan, None
        try:
            return plan, plan.build(conn)
        except Exception as exc:
            return plan, exc

    async def turn(self, first: tuple[_Turn | tuple[str, ...], Any] | None = None) -> bool:
        """One model call. Returns True when another turn should follow. `first`: the plan and prompt (or the
        exception building it raised) prepared when the run started."""
        await self.checkpoint()
        plan, built = first if first is not None else (self._plan(), None)
        if not isinstance(plan, _Turn):
            if plan[0] == "fail":
                await self.fail(plan[1], plan[2])
            else:
                await self.finish_incomplete(plan[1])
            return False
        try:
            if first is None:

                def build() -> Any:
                    with self.ex.store.read() as conn:
                        return plan.build(conn)

                built = await self.interruptible(self.ex.db(build))  # read-only: abandoning it is harmless
            if isinstance(built, Exception):
                raise built
        except PromptTooLarge as exc:
            if plan.prompt_left is not None:
                await self.finish_incomplete("max_prompt_tokens")
            else:
                await self.fail("invalid_prompt", str(exc))
            return False
        return await self.stream_turn(plan.provider, built.request, plan.server, plan.configs, plan.choice)

    async def stream_turn(
        self, provider: Any, request: ChatRequest, server: dict[str, ServerTool], configs: dict[str, dict], choice: str
    ) -> bool:
        calls: dict[int, dict[str, Any]] = {}  # provider index -> {id, name, args, step_index, server}
        finish = "stop"
        turn_usage = (0, 0)
        self.processor = self._text_processor(server)
        stream = provider.stream(request)
        events: asyncio.Queue = asyncio.Queue()
        reader = asyncio.create_task(_read_stream(stream, events))
        self.reader, self.events = reader, events
        if self.stopped.done():
            self._interrupt()
        try:
            while True:
                event = await events.get()
                if event is _END or event is _INTERRUPTED or self.stopped.done():
                    break
                if isinstance(event, _Failure):
                    raise event.exc
                if isinstance(event, TextDelta):
                    if event.text:
                        await self.on_text(event.text)
                elif isinstance(event, ToolCallStart):
                    if not self.run.get("parallel_tool_calls", True) and calls:
                        continue
                    await self.on_tool_start(event, calls, server)
                elif isinstance(event, ToolCallDelta):
                    call = calls.get(event.index)
                    if call is None:
                        continue
                    call["args"] += event.arguments
                    if not call["server"] and event.arguments:
                        self.emit_step_delta(
                            call["step_index"], {"type": "function", "function": {"arguments": event.arguments}}
                        )
                elif isinstance(event, Usage):
                    turn_usage = (event.prompt_tokens, event.completion_tokens)
                elif isinstance(event, Finish):
                    finish = event.reason
        except ProviderError as exc:
            await self.fail(exc.code, exc.message if hasattr(exc, "message") else str(exc))
            return False
        finally:
            self.reader = self.events = None
            _cancel_once(reader)
            done, _ = await asyncio.wait({reader}, timeout=INTERRUPT_GRACE_S)
            if done:
                await stream.aclose()
            else:
                self.ex.keep_unwinding(reader)
        await self.checkpoint()
        self.state["prompt_tokens"] = self.state.get("prompt_tokens", 0) + turn_usage[0]
        self.state["completion_tokens"] = self.state.get("completion_tokens", 0) + turn_usage[1]
        step_usage = usage(*turn_usage)
        if choice not in ("auto", "none", "required"):
            self.state["forced_done"] = True
        if calls:
            return await self.finish_tool_turn(calls, server, configs, step_usage)
        limit = self.run.get("max_completion_tokens")
        if finish == "length":
            await self.close_message("incomplete", "max_tokens", step_usage)
            if limit is not None and self.state["completion_tokens"] >= limit - 1:
                await self.finish_incomplete("max_completion_tokens", already_closed=True)
                return False
        elif finish == "content_filter":
            await self.close_message("incomplete", "content_filter", step_usage)
        else:
            await self.complete_with_message(step_usage)
            return False
        await self.finish_completed()
        return False

    def _text_processor(self, server: dict[str, ServerTool]) -> Any:
        refs = self.state.get("references", {})
        procs = [p for impl in server.values() if (p := impl.text_processor(refs.get(impl.type, []))) is not None]
        if not procs:
            return None
        return procs[0] if len(procs) == 1 else ChainedProcessor(procs)

    # -- assistant messages --------------------------------------------------------------------------------------

    async def open_message(self) -> None:
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
        pending = self.state.pop("pending_parts", [])
        for i, part in enumerate(pending):
            message["content"].append(part)
            self.emit_message_delta([{"index": i, **part}])
        self.text_index = len(pending)
        self.text_started = False
        self.annotations = []

    def _insert_open(self, conn: Any, message: dict, step: dict) -> None:
        Store.insert(conn, schema.run_steps, step, run_id=self.run_id, thread_id=self.run["thread_id"])
        Store.insert(conn, schema.messages, message, thread_id=self.run["thread_id"], run_id=self.run_id)

    async def save_open(self) -> None:
        """Commit the open message and step that so far exist only in memory."""
        message, step = self.message, self.step
        assert message is not None and step is not None
        saved = {**message, "content": list(message["content"])}  # its text is saved when it closes
        await self.owned_write(lambda conn: self._insert_open(conn, saved, step))
        self.unsaved = False

    def emit_message_delta(self, content: list[dict[str, Any]]) -> None:
        assert self.message is not None
        self.emit(
            "thread.message.delta",
            {"id": self.message["id"], "object": "thread.message.delta", "delta": {"content": content}},
        )

    def emit_text(self, text: str) -> None:
        """Stream a piece of the reply; its annotations (found by the text processor, which never splits a
        marker across pieces) ride on the same delta, as OpenAI sends them."""
        if not text:
            return
        part: dict[str, Any] = {"index": self.text_index, "type": "text", "text": {"value": text}}
        if not self.text_started:
            part["text"]["annotations"] = []
            self.text_started = True
        found = self.processor.annotations(text) if self.processor is not None else []
        if found:
            offset, first = len(self.text), len(self.annotations)
            for a in found:
                a["start_index"] += offset
                a["end_index"] += offset
            part["text"]["annotations"] = [{"index": first + i, **a} for i, a in enumerate(found)]
            self.annotations.extend(found)
        self.text += text
        self.emit_message_delta([part])

    async def on_text(self, text: str) -> None:
        if self.message is None:
            if self.step is not None:  # a tool step is open: text after tool calls in one turn is not expected
                return
            await self.open_message()
        self.emit_text(self.processor.feed(text) if self.processor else text)
        if self.unsaved and time.monotonic() - self.opened_at >= OPEN_WRITE_AFTER_S:
            await self.save_open()

    async def close_message(self, status: str, reason: str | None, step_usage: dict | None) -> None:
        if self.message is None:
            if status == "completed" and self.step is None:
                await self.open_message()  # an empty answer still gets a message with one (empty) text part
            else:
                return
        message, step = self._close_in_memory(status, reason, step_usage)
        message = await self.owned_write(lambda conn: self._save_closed(conn, message, step))
        self.message = self.step = None
        self.unsaved = False
        self._emit_closed(message, step)

    async def complete_with_message(self, step_usage: dict | None) -> None:
        """Close the reply message (completed) and complete the run in one transaction; the events follow its
        commit in the order of close_message + finish_completed."""
        if self.message is None:
            if self.step is not None:  # a tool step is open: not a plain reply
                await self.close_message("completed", None, step_usage)
                await self.finish_completed()
                return
            await self.open_message()  # an empty answer still gets a message with one (empty) text part
        message, step = self._close_in_memory("completed", None, step_usage)
        events: list[tuple[str, dict]] = []
        mutate = self._end_mutation("completed", {}, events)

        def save(conn: Any) -> tuple[dict, dict]:
            merged = self._save_closed(conn, message, step)
            run = Store.fetch(conn, schema.runs, self.run_id, lock=True)
            assert run is not None  # _write_owned found it in_progress under our lease
            self.message = self.step = None  # saved above: the run's ending must not close them again
            executions.save(conn, schema.runs, run, **mutate(run, conn))
            return merged, run

        try:
            merged, run = await self.owned_write(save)
        except BaseException:
            self.message, self.step = message, step  # not committed: whoever ends the run closes them
            raise
        self.unsaved = False
        self.run = run
        metrics.run_finished(run)
        self._emit_closed(merged, step)
        for name, data in events:
            self.emit(name, data)
        self.emit("thread.run.completed", run)

    def _close_in_memory(self, status: str, reason: str | None, step_usage: dict | None) -> tuple[dict, dict]:
        """Finish the open message and its step in memory (flushing the text processor's last deltas); the caller
        saves them with _save_closed and then emits _emit_closed."""
        message = self.message
        assert message is not None
        if self.processor is not None:
            self.emit_text(self.processor.flush(self.text))
        if not self.text_started:
            self.text_started = True
            self.emit_message_delta(
                [{"index": self.text_index, "type": "text", "text": {"value": "", "annotations": []}}]
            )
        message["content"].append({"type": "text", "text": {"value": self.text, "annotations": self.annotations}})
        ts = now()
        message["status"] = status
        if status == "completed":
            message["completed_at"] = ts
        else:
            message["incomplete_at"] = ts
            message["incomplete_details"] = {"reason": reason}
        step = self.step
        assert step is not None
        step_status = {"completed": "completed", "incomplete": "completed"}.get(status, status)
        self._finish_step(step, step_status, ts)
        step["usage"] = step_usage
        return message, step

    def _save_closed(self, conn: Any, message: dict, step: dict) -> dict:
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

    @staticmethod
    def _finish_step(step: dict, status: str, ts: int) -> None:
        step["status"] = status
        field = {
            "completed": "completed_at",
            "cancelled": "cancelled_at",
            "failed": "failed_at",
            "expired": "expired_at",
        }[status]
        step[field] = ts

    # -- tool calls -----------------------------------------------------------------------------------------------

    def emit_step_delta(self, index: int, payload: dict[str, Any]) -> None:
        assert self.step is not None
        self.emit(
            "thread.run.step.delta",
            {
                "id": self.step["id"],
                "object": "thread.run.step.delta",
                "delta": {"step_details": {"type": "tool_calls", "tool_calls": [{"index": index, **payload}]}},
            },
        )

    async def on_tool_start(self, event: ToolCallStart, calls: dict[int, dict], server: dict[str, ServerTool]) -> None:
        if self.message is not None:
            await self.close_message("completed", None, None)
        if self.step is None:
            step = step_object(self.run, "tool_calls", {"type": "tool_calls", "tool_calls": []})

            def save(conn: Any) -> None:
                Store.insert(conn, schema.run_steps, step, run_id=self.run_id, thread_id=self.run["thread_id"])

            await self.owned_write(save)
            self.step = step
            self.emit("thread.run.step.created", step)
            self.emit("thread.run.step.in_progress", step)
        impl = server.get(event.name)
        call = {"id": event.id, "name": event.name, "args": "", "step_index": len(calls), "server": impl}
        calls[event.index] = call
        if impl is not None:
            self.emit_step_delta(call["step_index"], impl.first_delta(event.id))
        else:
            self.emit_step_delta(
                call["step_index"],
                {"id": event.id, "type": "function", "function": {"name": event.name, "arguments": "", "output": None}},
            )

    async def finish_tool_turn(
        self, calls: dict[int, dict], server: dict[str, ServerTool], configs: dict[str, dict], step_usage: dict
    ) -> bool:
        step = self.step
        assert step is not None
        ordered = sorted(calls.values(), key=lambda c: c["step_index"])
        records: list[dict[str, Any]] = []
        functions: list[dict[str, Any]] = []
        outputs = self.state.setdefault("tool_outputs", {})
        self.state.setdefault("call_arguments", {})
        self.state.setdefault("call_names", {})
        for call in ordered:
            impl: ServerTool | None = call["server"]
            if impl is None:
                record = {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["args"], "output": None},
                }
                functions.append(record)
                records.append(record)
                continue
            self.state["call_arguments"][call["id"]] = call["args"]
            self.state["call_names"][call["id"]] = call["name"]
            ctx = ToolContext(
                self.rt,
                self.run,
                self.thread,
                self.assistant,
                configs[call["name"]],
                self.state.get("include", []),
                self.state.get("references", {}).get(impl.type, []),
            )

            async def delta(payload: dict[str, Any], index: int = call["step_index"]) -> None:
                self.emit_step_delta(index, payload)

            try:
                outcome: ToolOutcome = await self.interruptible(impl.execute(ctx, call["id"], call["args"], delta))
            except ToolFatal as exc:
                await self.fail("server_error", str(exc))
                return False
            outputs[call["id"]] = outcome.output
            records.append(outcome.call)
            self.state.setdefault("pending_parts", []).extend(outcome.message_parts)
            if outcome.references:
                self.state.setdefault("references", {}).setdefault(impl.type, []).append(outcome.references)
            await self.checkpoint()
        step["step_details"]["tool_calls"] = records
        step["usage"] = step_usage
        if functions:

            def requires_action(run: dict, conn: Any) -> dict[str, Any]:
                run["status"] = "requires_action"
                run["required_action"] = {
                    "type": "submit_tool_outputs",
                    "submit_tool_outputs": {
                        "tool_calls": [
                            {
                                "id": f["id"],
                                "type": "function",
                                "function": {"name": f["function"]["name"], "arguments": f["function"]["arguments"]},
                            }
                            for f in functions
                        ]
                    },
                }
                run["usage"] = usage(self.state.get("prompt_tokens", 0), self.state.get("completion_tokens", 0))
                Store.update(conn, schema.run_steps, step)
                return executions.state_columns(self.state, release=True)

            run = await self.ex.db(self.ex._transition, self.run_id, ("in_progress",), requires_action)
            if run is None:
                await self._lost_run()
                return False
            self.run = run
            self.emit("thread.run.requires_action", run)
            self.step = None
            return False
        self._finish_step(step, "completed", now())

        def save(conn: Any) -> None:
            Store.update(conn, schema.run_steps, step)
            self._save_state(conn)

        await self.owned_write(save)
        self.emit("thread.run.step.completed", step)
        self.step = None
        return True

    # -- endings -------------------------------------------------------------------------------------------------

    def _close_open(self, conn: Any, ending: str, ts: int, events: list[tuple[str, dict]]) -> None:
        """Close the open message (the rest of the run's open steps and messages are closed out by runs.end)."""
        if self.message is not None and self.step is not None and self.unsaved:
            self._insert_open(conn, self.message, self.step)  # closed below like a saved one
            self.unsaved = False
        if self.message is not None:
            if self.message["status"] == "in_progress":  # else close_message got as far as closing it in memory
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
        self, status: str, fields: dict[str, Any], events: list[tuple[str, dict]]
    ) -> Callable[[dict, Any], dict[str, Any]]:
        """The change that ends the run as `status` (inside the caller's transaction); the events to emit after its
        commit, before thread.run.<status>, are appended to `events`. Returns the columns to save with the run."""

        def mutate(run: dict, conn: Any) -> dict[str, Any]:
            ts = now()
            self._close_open(conn, status, ts, events)
            run_usage = usage(self.state.get("prompt_tokens", 0), self.state.get("completion_tokens", 0))
            cols = runs.end(conn, run, status, ts, events, usage=run_usage, **fields)
            return {**cols, **executions.state_columns(self.state)}

        return mutate

    async def _end(self, status: str, expected: tuple[str, ...], **fields: Any) -> None:
        events: list[tuple[str, dict]] = []
        mutate = self._end_mutation(status, fields, events)
        run = await self.ex.db(self.ex._transition, self.run_id, expected, mutate)
        if run is None:
            await self._lost_run()
            return
        self.run = run
        metrics.run_finished(run)
        for name, data in events:
            self.emit(name, data)
        self.emit(f"thread.run.{status}", run)

    async def _lost_run(self) -> None:
        """Someone else moved the run (cancel, expiry sweep): report where it is now."""
        current = await self.ex.db(self.ex.store.get, schema.runs, self.run_id)
        if current is None:
            return
        if current["status"] == "cancelling":
            self.run = current
            await self.finish_cancelled()
        elif current["status"] in ("cancelled", "expired", "failed", "completed", "incomplete"):
            self.emit(f"thread.run.{current['status']}", current)

    async def finish_completed(self) -> None:
        await self._end("completed", ("in_progress",))

    async def finish_incomplete(self, reason: str, already_closed: bool = False) -> None:
        await self._end("incomplete", ("in_progress",), incomplete_details={"reason": reason})

    async def fail(self, code: str, message: str) -> None:
        await self._end("failed", ("in_progress", "queued"), last_error={"code": code, "message": message})

    async def finish_cancelled(self) -> None:
        current = await self.ex.db(self.ex.store.get, schema.runs, self.run_id)
        if current and current["status"] == "cancelling":
            self.emit("thread.run.cancelling", current)
        await self._end("cancelled", ("in_progress", "cancelling"))

    async def finish_expired(self) -> None:
        await self._end("expired", ("in_progress", "queued", "requires_action"))


class ChainedProcessor:
    """Several tools' text processors over one reply: text flows through each in turn."""

    def __init__(self, procs: list[Any]) -> None:
        self.procs = procs

    def feed(self, text: str) -> str:
        for proc in self.procs:
            text = proc.feed(text)
        return text

    def flush(self, full_text: str) -> str:
        tail = ""
        for proc in self.procs:
            tail = proc.feed(tail) if tail else ""  # what earlier processors released passes through this one
            tail += proc.flush(full_text + tail)
        return tail

    def annotations(self, text: str) -> list[dict[str, Any]]:
        found = [a for proc in self.procs for a in proc.annotations(text)]
        found.sort(key=lambda a: a["start_index"])
        return found
