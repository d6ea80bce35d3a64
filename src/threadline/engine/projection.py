"""The projection protocol: how one wire API sees an execution the loop drives.

A projection owns the execution's wire object and rows (Assistants: the run, its steps and messages; Responses:
the response and its output items) and its stream events. It claims the execution, receives the loop's neutral
events (engine/neutral.py) and, for each, commits what the event makes true and only then emits wire events. Its
writes go through the execution repository (store/executions.py) on its `table`: guarded transitions and writes
owned under this process's lease, so a cancel or an expiry sweep that landed first makes them fail; the projection
then reports where the execution is and raises neutral.Stop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import sqlalchemy as sa

from .neutral import ExecutionSpec, Failure, Happening

# Called by the projection inside the transaction that moves the execution to in_progress, after taking the lease:
# (conn, spec, state). The loop loads its context there and builds the first prompt, so a plain execution needs no
# further read before calling the model.
Prepare = Callable[[sa.Connection, ExecutionSpec, dict[str, Any]], None]


class Projection(Protocol):
    table: sa.Table  # the execution table (status, expires_at, state, lease_owner, lease_until)
    execution_id: str
    # The execution's working state, loaded when it is claimed: a JSON-able dict the loop mutates (token totals,
    # tool outputs and arguments, server tools' references) and the projection saves with its writes.
    state: dict[str, Any]
    # The project the execution belongs to (its row's project_id), known once it is claimed: the loop acts for it
    # (tenancy.current_project), so its tools reach only that project's files and vector stores.
    project: str | None

    def start_in(self, conn: sa.Connection, obj: dict[str, Any], prepare: Prepare) -> None:
        """Claim `obj`, just inserted `queued` by the caller in `conn`'s write transaction, so an execution run at
        once costs no transaction of its own to start. Blocking; call on the event loop's thread is fine."""
        ...

    async def claim(self, prepare: Prepare) -> ExecutionSpec | None:
        """Move the execution from queued to in_progress under this process's lease (calling `prepare` in that
        transaction). None when it was not queued any more (the projection reported its state, e.g. finished a
        run cancelled meanwhile)."""
        ...

    def spec(self) -> ExecutionSpec:
        """The claimed execution's settings (after start_in / claim)."""
        ...

    async def started(self) -> None:
        """The claim has committed: emit the "in progress" event."""
        ...

    async def handle(self, event: Happening) -> None:
        """Commit what `event` makes true (if anything needs saving), then emit its wire events. Raises Stop when
        the execution is no longer in_progress under this lease (after reporting where it is)."""
        ...

    def report_unrecorded(self, failure: Failure, storage_full: bool) -> None:
        """The execution failed and even recording that failed (the store is down or full): tell a streaming
        client. Recovery marks the execution later."""
        ...

    def close(self) -> None:
        """The execution ended (its stream, if any, ends)."""
        ...
