"""code_interpreter sandbox: stateful, sandboxed Python sessions (bubblewrap + seccomp + rlimits + cgroups).

Entry point: SandboxManager (sessions.py). Launch details: bwrap.py. The in-sandbox REPL: repl.py.
"""

from .result import ExecutionResult, OutputFile, SandboxUnavailable
from .sessions import SandboxManager

__all__ = ["ExecutionResult", "OutputFile", "SandboxManager", "SandboxUnavailable"]
