"""Result types shared by the sandbox modules."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class OutputFile:
    name: str  # path relative to /mnt/data ("plot_1.png", "out/report.csv")
    data: bytes
    is_image: bool  # PNG, JPEG, GIF or WebP by signature


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


class SandboxUnavailable(Exception):
    """No working sandbox (bwrap or the sandbox venv missing or broken, or no capacity). The message is meant for
    a run's last_error."""
