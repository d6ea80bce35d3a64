"""The run executor: executes Assistants runs with the wire-neutral loop (engine/loop.py), a thread's context
(engine/context.ThreadContext) and the Assistants projection (engine/assistants.py), and responses with the same
loop, a response's context and the Responses projection (engine/responses.py).

It is what the rest of the server calls: `job()` for a run its creator starts in its own transaction,
`execute()` to drive a run, `signal_cancel()` after a cancel was committed. It keeps the set of runs this process
drives (the expiry sweep leaves those to their executor) and the cancellation signal's watches.
"""

from __future__ import annotations

import asyncio
import secrets
import socket

from .. import logs
from ..tenancy import current_project
from .assistants import AssistantsProjection, Sink
from .cancel import CancelSignal, PolledCancelSignal
from .context import ThreadContext
from .events import NullSink
from .loop import Execution
from .response_context import ResponsesContext
from .responses import ResponsesProjection
from .responses import Sink as ResponseSink
from .runtime import EngineRuntime

RESPONSE_PREFIX = "resp_"  # execute() is given run and response ids; the prefix says which
# This process's lease owner name in the execution tables.
OWNER = f"{socket.gethostname()}:{secrets.token_hex(4)}"


class RunExecutor:
    def __init__(self, runtime: EngineRuntime, signal: CancelSignal | None = None) -> None:
        self.rt = runtime
        self.store = runtime.store
        self.signal: CancelSignal = signal or PolledCancelSignal(runtime.store)
        self.active: set[str] = set()  # runs an execution of this process drives now
        self._orphans: set[asyncio.Task] = set()  # interrupted tools still unwinding

    def signal_cancel(self, run_id: str) -> None:
        """A cancel of `run_id` was committed (status `cancelling`); callable from any thread."""
        self.signal.notify(run_id)

    def keep_unwinding(self, task: asyncio.Task) -> None:
        """Hold a reference to an interrupted task that has not finished unwinding yet."""
        self._orphans.add(task)
        task.add_done_callback(self._orphans.discard)

    def _execution(self, run_id: str, sink: Sink) -> Execution:
        projection = AssistantsProjection(self.rt, run_id, sink, OWNER)
        return Execution(self.rt, projection, ThreadContext(self.rt), self.keep_unwinding)

    def _response_execution(self, response_id: str, sink: ResponseSink, record: bool) -> Execution:
        projection = ResponsesProjection(self.rt, response_id, sink, OWNER, record=record)
        source = ResponsesContext(self.rt, lambda: projection.output)
        return Execution(self.rt, projection, source, self.keep_unwinding)

    def response_job(self, sink: ResponseSink) -> Execution:
        """An execution for a (sync or streamed) response its creator starts in its own transaction; its events go
        to `sink`. Call on the event loop."""
        return self._response_execution("", sink, record=False)

    def background_job(self) -> Execution:
        """An execution for a queued (background) response a worker claims and starts in its claim's transaction;
        its events are recorded for GET /v1/responses/{id}?stream=true. Call on the event loop."""
        return self._response_execution("", NullSink(), record=True)

    def job(self, sink: Sink) -> Execution:
        """An execution for a run its creator starts in its own transaction (`Execution.start_in`), then passes to
        execute(); its events go to `sink`. Call on the event loop."""
        return self._execution("", sink)

    async def execute(self, run_id: str, sink: Sink | None = None, job: Execution | None = None) -> None:
        """Drive `run_id` until it ends or needs tool outputs; `job`: the one from job() that started it (its
        sink is used), else the events go to `sink` (none: nobody listens)."""
        logs.run_id.set(run_id)
        if job is not None:
            execution = job
        elif run_id.startswith(RESPONSE_PREFIX):  # a queued response: a background one, its events recorded
            execution = self._response_execution(run_id, sink or NullSink(), record=True)
        else:
            execution = self._execution(run_id, sink or NullSink())
        self.active.add(run_id)
        self.signal.watch(run_id, execution.on_cancel)
        # drive() acts for the execution's project (its row's); restored after, so a worker claims the next one
        # in system scope again
        token = current_project.set(current_project.get())
        try:
            await execution.run(OWNER)
        finally:
            current_project.reset(token)
            self.signal.unwatch(run_id)
            self.active.discard(run_id)
            execution.projection.close()
