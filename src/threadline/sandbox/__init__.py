"""code_interpreter sandbox: stateful, sandboxed Python sessions (bubblewrap + seccomp + rlimits + cgroups).

Entry points: the Sandbox interface (interface.py), implemented by SandboxManager (sessions.py: sessions in this
process) and RemoteSandbox (remote.py: sessions in the machine's sandbox service, service.py, shared by every
threadline process); selection.py picks one from the settings. Launch details: bwrap.py. The in-sandbox REPL (a
supervisor and the worker that runs the code): repl.py.
"""

from .interface import Sandbox
from .remote import RemoteSandbox
from .result import ExecutionResult, OutputCancelled, OutputFile, OutputSink, SandboxUnavailable
from .sessions import SandboxManager

__all__ = [
    "ExecutionResult",
    "OutputCancelled",
    "OutputFile",
    "OutputSink",
    "RemoteSandbox",
    "Sandbox",
    "SandboxManager",
    "SandboxUnavailable",
]
