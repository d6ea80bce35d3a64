"""code_interpreter sandbox: stateful, sandboxed Python sessions (bubblewrap + seccomp + rlimits + cgroups).

Entry point: SandboxManager (sessions.py). Launch details: bwrap.py. The in-sandbox REPL (a supervisor and the
worker that runs the code): repl.py.
"""

from .result import ExecutionResult, OutputCancelled, OutputFile, OutputSink, SandboxUnavailable
from .sessions import Sandbox, SandboxManager

__all__ = [
    "ExecutionResult",
    "OutputCancelled",
    "OutputFile",
    "OutputSink",
    "Sandbox",
    "SandboxManager",
    "SandboxUnavailable",
]
