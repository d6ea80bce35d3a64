"""The execution loop: model turns, tool calls, budgets, cancel and expiry, emitting wire-neutral events.

One `Execution` drives one execution (an Assistants run today) from queued to its end or to waiting for function
outputs. It knows nothing of wire formats: the prompt comes from a context source (engine/context.py), and what it
does is told to a projection (engine/projection.py) as neutral events (engine/neutral.py), each awaited so the
projection commits before it emits.

Interruption: a cancel (CancelSignal) or the expiry timer sets `stopped`; the provider stream is read in its own
task, which is then cancelled (closing the upstream response); server tools and the context build are awaited
through `interruptible`, which cancels them and gives them INTERRUPT_GRACE_S to unwind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa

from ..clock import Timer
from ..providers.base import (
    ChatProvider,
    ChatRequest,
    Finish,
    ProviderError,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    ToolSpec,
)
from ..providers.base import Usage as ProviderUsage
from ..store import executions
from ..store.storage import is_disk_full
from ..tenancy import current_project, project_id
from . import neutral as n
from .context import ContextSource, PromptTooLarge, RunContext, TurnPrompt
from .projection import Projection
from .runtime import EngineRuntime
from .tools import ServerTool, TextProcessor, ToolFatal, ToolOutcome, function_spec

log = logging.getLogger("threadline.engine")

MAX_TURNS = 32
# After a cancel or expiry, how long an interrupted tool may take to unwind before the run is finished anyway.
INTERRUPT_GRACE_S = 1.0

T = TypeVar("T")


class _Failure:
    """An exception raised by the provider stream, passed from the stream's reader task to the loop."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = object()  # the provider stream ended
_INTERRUPTED = object()  # a cancel or the expiry interrupted the wait for the provider


def _cancel_once(task: asyncio.Task) -> None:
    """Cancel `task` unless it is done or already being cancelled: a second cancel would interrupt its cleanup
    (closing the upstream connection) halfway."""
    if not task.done() and not task.cancelling():
        task.cancel()


async def _read_stream(stream: AsyncIterator[Any], queue: asyncio.Queue) -> None:
    """Read the provider stream in its own task (so a cancel can interrupt it anywhere) into `queue`."""
    try:
        async for event in stream:
            queue.put_nowait(event)
    except Exception as exc:
        queue.put_nowait(_Failure(exc))
    else:
        queue.put_nowait(_END)


class ChainedProcessor:
    """Several tools' text processors over one reply: text flows through each in turn."""

    def __init__(self, procs: list[TextProcessor]) -> None:
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


@dataclass
class _Turn:
    """A planned model call (see Execution._plan)."""

    provider: ChatProvider
    server: dict[str, ServerTool]  # by function name
    configs: dict[str, dict]  # tool entries by function name
    choice: str
    prompt: TurnPrompt


@dataclass
class _Call:
    """A tool call of the current turn as it streams."""

    id: str
    name: str
    index: int  # position in the turn
    server: ServerTool | None
    args: str = ""


class Execution:
    """One execution of one run, from queued to a terminal state or to waiting for function outputs."""

    def __init__(
        self,
        runtime: EngineRuntime,
        projection: Projection,
        source: ContextSource,
        keep_unwinding: Callable[[asyncio.Task], None],
    ) -> None:
        self.rt = runtime
        self.projection = projection
        self.source = source
        self._keep_unwinding = keep_unwinding
        self.cancelled = False  # a cancel was requested
        self.expired = False  # expires_at passed
        self.stopped: asyncio.Future[None] = asyncio.get_running_loop().create_future()  # either of the two
        self.reader: asyncio.Task | None = None  # the task reading the provider stream, while a turn streams
        self.events: asyncio.Queue | None = None  # its events
        self._expiry: Timer | None = None
        self.spec: n.ExecutionSpec | None = None
        self.state: dict[str, Any] = {}
        self.started = False  # start_in() claimed the execution in its creator's transaction
        self.first: tuple[_Turn | tuple[str, ...], RunContext | Exception | None] | None = None
        # The open reply of the current turn: its text (as emitted) and annotations.
        self.replying = False
        self.text = ""
        self.annotations: list[dict[str, Any]] = []
        self.processor: TextProcessor | None = None
        # The model call admitted by the limits (project, model, estimated prompt tokens), until its tokens are known.
        self.admitted: tuple[str, str, int] | None = None

    @property
    def execution_id(self) -> str:
        return self.projection.execution_id

    # -- interruption: cancel and expiry stop whatever the execution waits for ------------------------------------

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
        assert self.spec is not None
        expires_at = self.spec.expires_at
        if expires_at is not None and self._expiry is None:
            self._expiry = self.rt.clock.call_later(max(0.0, expires_at - self.rt.clock.time()), self.on_expiry)

    def close(self) -> None:
        """Disarm the expiry timer (the execution ended; the caller closes the projection)."""
        if self._expiry is not None:
            self._expiry.cancel()

    async def interruptible(self, aw: Awaitable[T]) -> T:
        """Await `aw` unless the execution is cancelled or expires first: then `aw` is cancelled, the execution
        finished (cancelled / expired) and Stop raised."""
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
            log.warning("run %s: an interrupted tool is still unwinding", self.execution_id)
            self._keep_unwinding(task)
        elif not task.cancelled() and task.exception() is not None:
            log.info("run %s: interrupted tool ended with %r", self.execution_id, task.exception())
        await self.checkpoint()
        raise n.Stop

    async def checkpoint(self) -> None:
        """Finish the execution (and raise Stop) when a cancel arrived or expires_at passed."""
        assert self.spec is not None
        if self.cancelled:
            await self.finish("cancelled")
            raise n.Stop
        expires_at = self.spec.expires_at
        if self.expired or (expires_at is not None and self.rt.clock.now() >= expires_at):
            await self.finish("expired")
            raise n.Stop

    async def heartbeat(self, owner: str) -> None:
        """Renew `owner`'s lease every third of its length while the execution runs."""
        lease = self.rt.settings.run_lease_s
        table = self.projection.table
        while True:
            await asyncio.sleep(lease / 3)
            try:
                until = self.rt.clock.now() + lease
                await asyncio.to_thread(executions.renew_lease, self.rt.store, table, self.execution_id, owner, until)
            except Exception:  # a missed beat is retried; the lease is generous
                log.warning("heartbeat for %s failed", self.execution_id, exc_info=True)

    # -- events -----------------------------------------------------------------------------------------------------

    def _total(self) -> n.Usage:
        return n.Usage(self.state.get("prompt_tokens", 0), self.state.get("completion_tokens", 0))

    async def finish(self, status: str, reason: str | None = None, error: n.Failure | None = None) -> None:
        await self.projection.handle(n.Finished(status, self._total(), reason=reason, error=error))  # type: ignore[arg-type]

    async def fail(self, code: str, message: str) -> None:
        await self.finish("failed", error=n.Failure(code, message))

    # -- start ------------------------------------------------------------------------------------------------------

    def _prepare(self, conn: sa.Connection, spec: n.ExecutionSpec, state: dict[str, Any]) -> None:
        """Inside the claiming transaction: load the context and build the first prompt (a prompt that cannot be
        built is kept as the exception, handled by turn() after the claim has committed)."""
        self.spec, self.state = spec, state
        self.source.load(conn, spec, state)
        plan = self._plan()
        if not isinstance(plan, _Turn):
            self.first = (plan, None)
            return
        try:
            self.first = (plan, self.source.build(conn, spec, state, plan.prompt))
        except Exception as exc:
            self.first = (plan, exc)

    def start_in(self, conn: sa.Connection, obj: dict[str, Any]) -> None:
        """Claim `obj`, just inserted (queued) in `conn`'s write transaction by the caller, so an execution run at
        once costs one transaction less; drive() runs it after the commit."""
        self.projection.start_in(conn, obj, self._prepare)
        self.started = True

    async def drive(self) -> None:
        """Run the execution's turns until it ends or waits for function outputs."""
        if not self.started and await self.projection.claim(self._prepare) is None:
            return
        current_project.set(self.projection.project)  # the caller (RunExecutor.execute) restores its own after
        self._arm_expiry()
        await self.projection.started()
        first, self.first = self.first, None
        for _ in range(MAX_TURNS):
            if not await self.turn(first):
                return
            first = None
        await self.fail("server_error", f"The run stopped after {MAX_TURNS} model turns without a final answer.")

    async def run(self, owner: str) -> None:
        """drive() with its heartbeat, turning any crash into a failed execution (never one left hanging)."""
        heartbeat = asyncio.create_task(self.heartbeat(owner))
        try:
            await self.drive()
        except n.Stop:
            pass
        except Exception as exc:  # a bug must fail the run, never leave it hanging
            full = is_disk_full(exc)
            if full:
                log.warning("run %s failed: storage full: %s", self.execution_id, exc)
            else:
                log.exception("run %s crashed", self.execution_id)
            crash = f"Internal error while executing the run: {type(exc).__name__}"
            message = n.STORAGE_FULL_MESSAGE if full else crash
            try:
                await self.fail("server_error", message)
            except n.Stop:
                pass
            except Exception:  # the store itself failed: tell the client; recovery will mark the run later
                log.exception("could not record the failure of run %s", self.execution_id)
                self.projection.report_unrecorded(n.Failure("server_error", message), full)
        finally:
            heartbeat.cancel()
            self.close()
            try:
                self.rt.limits.after_execution(project_id())
            except Exception:  # alerts are reported later (the next execution) rather than fail this one
                log.warning("spend alerts of %s not evaluated", self.execution_id, exc_info=True)

    # -- one model turn -----------------------------------------------------------------------------------------

    def _tools(self) -> tuple[list[ToolSpec], dict[str, ServerTool], dict[str, dict]]:
        assert self.spec is not None
        specs: list[ToolSpec] = []
        server: dict[str, ServerTool] = {}
        configs: dict[str, dict] = {}
        for tool in self.spec.tools:
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
        assert self.spec is not None
        choice = self.spec.tool_choice or "auto"
        if isinstance(choice, str):
            return choice
        if choice.get("type") == "function":
            return choice["function"]["name"]
        for name, impl in server.items():
            if impl.type == choice.get("type"):
                return name
        return "auto"

    def _server_calls_left(self, started: int = 0) -> int | None:
        """How many more server tool calls `max_tool_calls` allows (None: no cap), `started` of this turn's
        counted as made."""
        assert self.spec is not None
        cap = self.spec.max_tool_calls
        return None if cap is None else max(0, cap - self.state.get("server_tool_calls", 0) - started)

    def _plan(self) -> _Turn | tuple[str, ...]:
        """What the next model call needs (no I/O): the resolved provider, tools and prompt settings; or how the
        execution ends instead: ("fail", code, message) / ("incomplete", reason)."""
        spec = self.spec
        assert spec is not None
        try:
            provider, upstream = self.rt.providers.resolve(spec.model)
        except ProviderError as exc:
            return ("fail", exc.code, str(exc.message if hasattr(exc, "message") else exc))
        specs, server, configs = self._tools()
        choice = self._tool_choice(server)
        if choice == "none":
            specs = []
        if self.state.get("forced_done") and choice not in ("auto", "none"):
            choice = "auto"  # a forced tool is called once; afterwards the model answers
        if self._server_calls_left() == 0:  # max_tool_calls reached: the model answers with what it has
            specs = [s for s in specs if s.name not in server]
            if choice in server or (choice == "required" and not specs):
                choice = "auto"
        used_prompt = self.state.get("prompt_tokens", 0)
        used_completion = self.state.get("completion_tokens", 0)
        completion_left = None if spec.max_completion_tokens is None else spec.max_completion_tokens - used_completion
        if completion_left is not None and completion_left <= 0:
            return ("incomplete", "max_completion_tokens")
        prompt_left = None if spec.max_prompt_tokens is None else spec.max_prompt_tokens - used_prompt
        if prompt_left is not None and prompt_left <= 0:
            return ("incomplete", "max_prompt_tokens")
        parts = [spec.instructions or ""]
        parts += [impl.instructions(configs[name]) for name, impl in server.items()]
        prompt = TurnPrompt(
            system_prompt="\n\n".join(p for p in parts if p),
            tools=specs,
            tool_choice=choice,
            upstream_model=upstream,
            images=provider.supports_images(upstream),
            context_window=self.rt.providers.context_window(spec.model),
            prompt_budget=prompt_left,
            max_tokens=completion_left,
        )
        return _Turn(provider, server, configs, choice, prompt)

    async def turn(self, first: tuple[_Turn | tuple[str, ...], RunContext | Exception | None] | None = None) -> bool:
        """One model call. Returns True when another turn should follow. `first`: the plan and prompt (or the
        exception building it raised) prepared when the execution was claimed."""
        await self.checkpoint()
        plan, built = first if first is not None else (self._plan(), None)
        if not isinstance(plan, _Turn):
            if plan[0] == "fail":
                await self.fail(plan[1], plan[2])
            else:
                await self.finish("incomplete", reason=plan[1])
            return False
        try:
            if first is None:
                spec, state, prompt = self.spec, self.state, plan.prompt
                assert spec is not None

                def build() -> RunContext:
                    with self.rt.store.read() as conn:
                        return self.source.build(conn, spec, state, prompt)

                built = await self.interruptible(asyncio.to_thread(build))  # read-only: abandoning it is harmless
            if isinstance(built, Exception):
                raise built
        except PromptTooLarge as exc:
            if plan.prompt.prompt_budget is not None:
                await self.finish("incomplete", reason="max_prompt_tokens")
            else:
                await self.fail("invalid_prompt", str(exc))
            return False
        assert built is not None
        refusal = await self._admit(built.prompt_tokens)
        if refusal is not None:
            await self.fail("rate_limit_exceeded", refusal)
            return False
        return await self.stream_turn(plan, built.request)

    async def _admit(self, prompt_tokens: int) -> str | None:
        """Check the model call about to be made against the project's limits (limits.py): the refusal's message,
        or None when it may go ahead (then it is counted). No query when nothing limits the project."""
        assert self.spec is not None
        project, model = project_id(), self.spec.model
        self.admitted = None
        if not self.rt.limits.applies(project, model):
            return None
        refusal = await asyncio.to_thread(self.rt.limits.admit, project, model, prompt_tokens)
        if refusal is not None:
            return refusal.message
        self.admitted = (project, model, prompt_tokens)
        return None

    async def _settle(self, usage: n.Usage) -> None:
        """Correct the admitted call's token count to what the provider reported (input + output)."""
        if self.admitted is None:
            return
        project, model, estimate = self.admitted
        self.admitted = None
        delta = usage.prompt_tokens + usage.completion_tokens - max(1, estimate)
        if delta and self.rt.limits.counts_tokens(project, model):
            try:
                await asyncio.to_thread(self.rt.limits.settle, project, model, delta)
            except Exception:  # the count is a rate limit's estimate; a missed correction is not worth a failure
                log.warning("correcting the token count of %s failed", self.execution_id, exc_info=True)

    async def stream_turn(self, plan: _Turn, request: ChatRequest) -> bool:
        spec = self.spec
        assert spec is not None
        calls: dict[int, _Call] = {}  # provider index -> call
        finish = "stop"
        ignored = False
        turn_usage = n.Usage(0, 0)
        self.processor = self._text_processor(plan.server)
        called = time.monotonic()
        stream = plan.provider.stream(request)
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
                        await self.on_text(event.text, bool(calls))
                elif isinstance(event, ToolCallStart):
                    if not spec.parallel_tool_calls and calls:
                        continue
                    if event.name in plan.server and self._server_calls_left(_servers(calls)) == 0:
                        ignored = True  # beyond max_tool_calls: ignored (contract §2.1), never shown or run
                        continue
                    await self.on_tool_start(event, calls, plan.server)
                elif isinstance(event, ToolCallDelta):
                    call = calls.get(event.index)
                    if call is None:
                        continue
                    call.args += event.arguments
                    if not call.server and event.arguments:
                        await self.projection.handle(n.ToolArgumentsDelta(call.id, call.index, event.arguments))
                elif isinstance(event, ProviderUsage):
                    turn_usage = n.Usage(event.prompt_tokens, event.completion_tokens)
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
                self._keep_unwinding(reader)
        await self._settle(turn_usage)
        await self.checkpoint()
        turn_usage = n.Usage(turn_usage.prompt_tokens, turn_usage.completion_tokens, _ms_since(called))
        self.state["prompt_tokens"] = self.state.get("prompt_tokens", 0) + turn_usage.prompt_tokens
        self.state["completion_tokens"] = self.state.get("completion_tokens", 0) + turn_usage.completion_tokens
        if plan.choice not in ("auto", "none", "required"):
            self.state["forced_done"] = True
        if calls:
            return await self.tool_turn(calls, plan, turn_usage)
        if ignored and not self.replying and finish not in ("length", "content_filter"):
            await self.projection.handle(n.ToolTurnDone(turn_usage))
            return True  # only ignored calls: the next turn, without server tools, answers
        limit = spec.max_completion_tokens
        if finish == "length":
            await self.close_text("incomplete", "max_tokens", turn_usage)
            if limit is not None and self.state["completion_tokens"] >= limit - 1:
                await self.finish("incomplete", reason="max_completion_tokens")
                return False
        elif finish == "content_filter":
            await self.close_text("incomplete", "content_filter", turn_usage)
        else:
            if not self.replying:
                await self.open_text()  # an empty answer still gets a reply (with one empty text)
            await self._flush()
            done = self._text_done("completed", None, turn_usage)
            await self.projection.handle(n.Finished("completed", self._total(), text=done))
            return False
        await self.finish("completed")
        return False

    def _text_processor(self, server: dict[str, ServerTool]) -> TextProcessor | None:
        refs = self.state.get("references", {})
        procs = [p for impl in server.values() if (p := impl.text_processor(refs.get(impl.type, []))) is not None]
        if not procs:
            return None
        return procs[0] if len(procs) == 1 else ChainedProcessor(procs)

    # -- the reply --------------------------------------------------------------------------------------------------

    async def open_text(self) -> None:
        parts = self.state.pop("pending_parts", [])
        self.replying, self.text, self.annotations = True, "", []
        await self.projection.handle(n.TextStarted(parts))

    async def emit_text(self, text: str) -> None:
        """Send a piece of the reply; its annotations (found by the text processor, which never splits a marker
        across pieces) ride on the same event, offset to the whole reply."""
        if not text:
            return
        found = self.processor.annotations(text) if self.processor is not None else []
        offset = len(self.text)
        for a in found:
            a["start_index"] += offset
            a["end_index"] += offset
        self.annotations.extend(found)
        self.text += text
        await self.projection.handle(n.TextDelta(text, found))

    async def on_text(self, text: str, tools_started: bool) -> None:
        if not self.replying:
            if tools_started:  # text after tool calls in one turn is not expected
                return
            await self.open_text()
        await self.emit_text(self.processor.feed(text) if self.processor else text)

    def _text_done(self, status: str, reason: str | None, usage: n.Usage | None) -> n.TextDone:
        """Close the open reply (the processor's held-back text is sent first by the caller's flush)."""
        self.replying = False
        return n.TextDone(self.text, self.annotations, status, reason, usage)  # type: ignore[arg-type]

    async def _flush(self) -> None:
        if self.processor is not None:
            await self.emit_text(self.processor.flush(self.text))

    async def close_text(self, status: str, reason: str | None, usage: n.Usage | None) -> None:
        """End the open reply (nothing when none is open)."""
        if not self.replying:
            return
        await self._flush()
        await self.projection.handle(self._text_done(status, reason, usage))

    # -- tool calls -----------------------------------------------------------------------------------------------

    async def on_tool_start(self, event: ToolCallStart, calls: dict[int, _Call], server: dict[str, ServerTool]) -> None:
        if self.replying:
            await self.close_text("completed", None, None)
        impl = server.get(event.name)
        call = _Call(event.id, event.name, len(calls), impl)
        calls[event.index] = call
        first = impl.first_delta(event.id) if impl is not None else None
        kind = impl.type if impl is not None else None
        await self.projection.handle(n.ToolCallStarted(event.id, event.name, call.index, kind, first))

    async def tool_turn(self, calls: dict[int, _Call], plan: _Turn, turn_usage: n.Usage) -> bool:
        """Run the turn's server tools in order; then wait for the function calls' outputs, or take another turn."""
        spec = self.spec
        assert spec is not None
        ordered = sorted(calls.values(), key=lambda c: c.index)
        for call in ordered:
            kind = call.server.type if call.server is not None else None
            await self.projection.handle(n.ToolCallDone(call.id, call.name, call.index, call.args, kind))
        functions: list[n.FunctionCall] = []
        outputs = self.state.setdefault("tool_outputs", {})
        self.state.setdefault("call_arguments", {})
        self.state.setdefault("call_names", {})
        for call in ordered:
            impl = call.server
            if impl is None:
                functions.append(n.FunctionCall(call.id, call.name, call.args))
                continue
            self.state["call_arguments"][call.id] = call.args
            self.state["call_names"][call.id] = call.name
            self.state["server_tool_calls"] = self.state.get("server_tool_calls", 0) + 1
            prior = self.state.get("references", {}).get(impl.type, [])
            ctx = self.source.tool_context(spec, self.state, plan.configs[call.name], prior)

            async def delta(payload: dict[str, Any], c: _Call = call) -> None:
                await self.projection.handle(n.ServerToolProgress(c.id, c.index, payload))

            try:
                outcome: ToolOutcome = await self.interruptible(impl.execute(ctx, call.id, call.args, delta))
            except ToolFatal as exc:
                await self.fail("server_error", str(exc))
                return False
            outputs[call.id] = outcome.output
            self.state.setdefault("pending_parts", []).extend(outcome.message_parts)
            if outcome.references:
                self.state.setdefault("references", {}).setdefault(impl.type, []).append(outcome.references)
            await self.projection.handle(
                n.ServerToolDone(call.id, call.index, call.name, impl.type, outcome.call, outcome.output)
            )
            await self.checkpoint()
        if functions:
            await self.projection.handle(n.FunctionCallsPending(functions, turn_usage, self._total()))
            return False
        await self.projection.handle(n.ToolTurnDone(turn_usage))
        return True


def _servers(calls: dict[int, _Call]) -> int:
    return sum(1 for c in calls.values() if c.server is not None)


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
