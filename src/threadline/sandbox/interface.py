"""Sandbox: what the code_interpreter tool needs from a sandbox, wherever the sessions live.

Implementations: SandboxManager (sessions.py: sessions in this process) and RemoteSandbox (remote.py: sessions in
the machine's sandbox service, shared by every threadline process on the machine).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .result import ExecutionResult, InputData, OutputSink


@runtime_checkable
class Sandbox(Protocol):
    """Stateful sandboxed Python sessions, one per key (the engine uses the thread id)."""

    max_output_files: int  # output files handed out per execution; the rest are named in files_dropped

    async def start(self) -> tuple[bool, str]:
        """Probe the sandbox (and fill the warm pool) now rather than at the first execution: (ok, reason)."""
        ...

    async def execute(
        self,
        session_key: str,
        code: str,
        *,
        input_files: dict[str, InputData] | None = None,
        timeout_s: float | None = None,
        sink: OutputSink | None = None,
        input_ids: dict[str, str] | None = None,
    ) -> ExecutionResult:
        """Run ``code`` in the key's session (created on first use), after placing ``input_files`` in /mnt/data
        (those whose ``input_ids`` identity the live session already holds are skipped). Output files stream to
        ``sink`` (default: OutputFile.data). Cancelling the awaiting task interrupts the cell; CancelledError comes
        back once the cell has stopped (or its session was killed). Raises SandboxUnavailable when no sandbox can
        run code."""
        ...

    def has_session(self, session_key: str) -> bool:
        """True if the key's session is alive and not expired (the next execute reuses it and its /mnt/data).
        RemoteSandbox asks the service (a short blocking round trip; False when no service runs)."""
        ...

    async def close_session(self, session_key: str) -> None:
        """End the key's session (variables and /mnt/data are gone)."""
        ...

    @property
    def last_status(self) -> tuple[bool, str] | None:
        """(available, reason) as last known; None before the first probe. Never starts anything."""
        ...

    def stats(self) -> dict[str, int]:
        """At least `sessions` (live) and `warm_pool` (started ahead of use); also `cgroups` (0/1) and `rss_bytes`
        of the sessions. May block briefly (RemoteSandbox asks the service)."""
        ...

    async def aclose(self) -> None:
        """Release what this process holds (an in-process manager also kills its sessions)."""
        ...
