"""Result types shared by the sandbox modules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

# Receives each output file while the sandbox is read: (path relative to /mnt/data, stream of its bytes) -> a value
# kept as OutputFile.ref. Runs on a sandbox I/O thread; the stream raises OutputCancelled if the execution is
# cancelled meanwhile. Any other exception skips that file (the result says so in ``file_notes``).
OutputSink = Callable[[str, BinaryIO], Any]

# An input file's content: the bytes, or a function opening a binary stream of them (copied in chunks, then closed;
# called on a sandbox I/O thread with the server's own file permissions).
InputData = bytes | Callable[[], BinaryIO]


class OutputCancelled(Exception):
    """Raised by an output stream when the execution it belongs to was cancelled."""


@dataclass
class OutputFile:
    name: str  # path relative to /mnt/data ("plot_1.png", "out/report.csv")
    size: int  # bytes
    is_image: bool  # PNG, JPEG, GIF or WebP by signature
    data: bytes | None = None  # the content, when execute() was given no sink
    ref: Any = None  # what the sink returned for this file


@dataclass
class ExecutionResult:
    logs: str  # stdout + stderr (subprocess output included) and the repr of a trailing expression
    error: str | None  # traceback text if the code raised, else None
    timed_out: bool
    files: list[OutputFile] = field(default_factory=list)  # new or changed files in /mnt/data
    # True when the session's previous state is gone (it died, hit a limit, or expired) and this execution ran
    # in a fresh interpreter; ``notice`` says why, in words suitable for the model.
    session_restarted: bool = False
    notice: str | None = None
    duration_s: float = 0.0
    # New or changed files beyond the per-execution cap (not in ``files``), in modification order.
    files_dropped: list[str] = field(default_factory=list)
    # One line per changed file that could not be handed out (too large, or the sink failed), for the model.
    file_notes: list[str] = field(default_factory=list)
    # True when this was the first execution in its session (a fresh interpreter, whether or not the key had one).
    new_session: bool = False
    # False when the input files could not be placed in /mnt/data (``error`` says why; the code did not run).
    inputs_placed: bool = True


class SandboxUnavailable(Exception):
    """No working sandbox (bwrap or the sandbox venv missing or broken, or no capacity). The message is meant for
    a run's last_error."""
