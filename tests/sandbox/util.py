"""Helpers shared by the sandbox tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def _bwrap_problem() -> str | None:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed"
    proc = subprocess.run(
        [bwrap, "--unshare-all", "--unshare-user", "--ro-bind", "/", "/", "true"], capture_output=True, timeout=30
    )
    if proc.returncode != 0:
        return f"bwrap cannot create namespaces here: {proc.stderr.decode(errors='replace').strip()}"
    return None


BWRAP_PROBLEM = _bwrap_problem()

requires_bwrap = pytest.mark.skipif(BWRAP_PROBLEM is not None, reason=f"sandbox cannot run: {BWRAP_PROBLEM}")
IS_ROOT = os.geteuid() == 0


def processes_of_uid(uid: int) -> list[int]:
    """Live (non-zombie) processes owned by ``uid`` on the host."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in "ZX":
            pids.append(int(entry))
    return pids


# Processes the test process already had before the current test (a PostgreSQL cluster, other tests' servers);
# their subtrees are not the sandbox's. Set by the autouse fixture in conftest.py.
BASELINE: set[int] = set()


def descendants(root: int) -> list[int]:
    """Live (non-zombie) descendants of process ``root``, leaving out the subtrees of BASELINE processes."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in "ZX":
            parent[int(entry)] = int(fields[1])
    out = []
    for pid in parent:
        if pid in BASELINE:
            continue
        p = parent.get(pid)
        while p is not None and p > 1 and p not in BASELINE:
            if p == root:
                out.append(pid)
                break
            p = parent.get(p)
    return out


def still_running(pids: list[int]) -> list[int]:
    """The pids of ``pids`` that are still alive (zombies count as gone)."""
    out = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in "ZX":
            out.append(pid)
    return out
