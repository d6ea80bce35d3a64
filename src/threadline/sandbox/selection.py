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

import sys
from typing import TYPE_CHECKING

from ..config import child_environment, env_name
from .endpoint import ServiceDir
from .interface import Sandbox
from .remote import Launcher, RemoteSandbox
from .sessions import SandboxManager

if TYPE_CHECKING:
    from ..config import Settings


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
        venv=settings.sandbox_venv,
        unsafe=settings.code_interpreter_unsandboxed_unsafe,
    )


def service_dir(settings: Settings) -> ServiceDir:
    return ServiceDir((settings.sandbox_service_dir or settings.data_dir / "sandbox" / "service").resolve())


# The settings a service started on demand takes from the process that starts it (they may have been given
# programmatically rather than through the environment).
SERVICE_SETTINGS = (
    "sandbox_max_sessions",
    "sandbox_idle_s",
    "sandbox_timeout_s",
    "sandbox_memory_mb",
    "sandbox_warm_pool",
    "sandbox_max_output_files",
    "sandbox_venv",
    "code_interpreter_unsandboxed_unsafe",
    "sandbox_service_linger_s",
)


def service_env(settings: Settings) -> dict[str, str]:
    """The environment of a sandbox service this process starts: its own, with its sandbox settings on top."""
    values = {}
    for name in SERVICE_SETTINGS:
        value = getattr(settings, name)
        values[env_name(name)] = ("1" if value else "0") if isinstance(value, bool) else str(value)
    return child_environment(values)


def open_sandbox(settings: Settings) -> Sandbox:
    """The Sandbox for a threadline process (THREADLINE_SANDBOX_SERVICE: auto, external or off)."""
    if settings.sandbox_service == "off":
        return manager_from_settings(settings)
    where = service_dir(settings)
    launcher = None
    if settings.sandbox_service == "auto":
        argv = [sys.executable, "-m", "threadline.cli", "sandbox", "--on-demand"]
        argv += ["--data-dir", str(settings.data_dir.resolve()), "--service-dir", str(where.path)]
        launcher = Launcher(where, argv, env=service_env(settings))
    return RemoteSandbox(where, max_output_files=settings.sandbox_max_output_files, launcher=launcher)
