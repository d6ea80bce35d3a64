"""Which Sandbox a threadline process uses, from its Settings (THREADLINE_SANDBOX_SERVICE).

- ``auto`` (default): the machine's shared sandbox service (service.py) in the service directory, started on demand
  by the first process that needs it, so a thread's session is the same whichever process runs the thread's next
  run. Single-process `threadline serve` needs no setup: the service starts with the first code execution (or at
  start-up when a warm pool is configured) and exits ``THREADLINE_SANDBOX_SERVICE_LINGER_S`` after the last
  threadline process detached.
- ``external``: the same service, but never started by threadline (`threadline sandbox` run by systemd, a container,
  ...); without it, code_interpreter reports itself unavailable.
- ``off``: an in-process SandboxManager; sessions are private to the process (only right with one process per
  machine).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from .endpoint import ServiceDir
from .interface import Sandbox
from .remote import Launcher, RemoteSandbox
from .sessions import SandboxManager

if TYPE_CHECKING:
    from ..config import Settings

MODES = ("auto", "external", "off")


def manager_from_settings(settings: Settings) -> SandboxManager:
    """The in-process manager configured by THREADLINE_SANDBOX_* (what the service and the ``off`` mode own)."""
    return SandboxManager(
        root_dir=settings.data_dir / "sandbox",
        max_sessions=settings.sandbox_max_sessions,
        idle_timeout_s=settings.sandbox_idle_s,
        wall_clock_s=settings.sandbox_timeout_s,
        memory_mb=settings.sandbox_memory_mb,
        warm_pool=settings.sandbox_warm_pool,
        max_output_files=settings.sandbox_max_output_files,
    )


def service_dir(settings: Settings) -> ServiceDir:
    return ServiceDir((settings.sandbox_service_dir or settings.data_dir / "sandbox" / "service").resolve())


def service_env(settings: Settings) -> dict[str, str]:
    """The sandbox settings of this process, as the environment of a service it starts (they may have been given
    programmatically rather than through the environment)."""
    return {
        "THREADLINE_SANDBOX_MAX_SESSIONS": str(settings.sandbox_max_sessions),
        "THREADLINE_SANDBOX_IDLE_S": str(settings.sandbox_idle_s),
        "THREADLINE_SANDBOX_TIMEOUT_S": str(settings.sandbox_timeout_s),
        "THREADLINE_SANDBOX_MEMORY_MB": str(settings.sandbox_memory_mb),
        "THREADLINE_SANDBOX_WARM_POOL": str(settings.sandbox_warm_pool),
        "THREADLINE_SANDBOX_MAX_OUTPUT_FILES": str(settings.sandbox_max_output_files),
        "THREADLINE_SANDBOX_SERVICE_LINGER_S": str(settings.sandbox_service_linger_s),
    }


def open_sandbox(settings: Settings) -> Sandbox:
    """The Sandbox for a threadline process. Raises ValueError for an unknown THREADLINE_SANDBOX_SERVICE."""
    mode = settings.sandbox_service
    if mode not in MODES:
        raise ValueError(f"THREADLINE_SANDBOX_SERVICE must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "off":
        return manager_from_settings(settings)
    where = service_dir(settings)
    launcher = None
    if mode == "auto":
        argv = [sys.executable, "-m", "threadline.cli", "sandbox", "--on-demand"]
        argv += ["--data-dir", str(settings.data_dir.resolve()), "--service-dir", str(where.path)]
        launcher = Launcher(where, argv, env={**os.environ, **service_env(settings)})
    return RemoteSandbox(where, max_output_files=settings.sandbox_max_output_files, launcher=launcher)
