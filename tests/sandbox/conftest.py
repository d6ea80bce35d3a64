"""Fixtures for the sandbox tests. They need a working bubblewrap and the venv from scripts/setup-sandbox.sh."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from threadline.sandbox import SandboxManager

from . import util


@pytest.fixture(autouse=True)
def _baseline_processes() -> None:
    util.BASELINE.clear()
    util.BASELINE.update(util.descendants(os.getpid()))


@pytest.fixture
def run_manager(tmp_path: Path) -> Callable[..., object]:
    """run_manager(body, **kwargs): run ``await body(manager)`` with a fresh manager, then close it."""

    def run(body: Callable[[SandboxManager], Awaitable[object]], **kwargs: object) -> object:
        kwargs.setdefault("warm_pool", 0)
        kwargs.setdefault("wall_clock_s", 60)  # far above what the tests' cells need, even on a loaded machine

        async def main() -> object:
            manager = SandboxManager(root_dir=tmp_path / "sandbox", **kwargs)
            try:
                ok, reason = manager.available()
                assert ok, f"sandbox unavailable (run scripts/setup-sandbox.sh): {reason}"
                return await body(manager)
            finally:
                await manager.aclose()

        return asyncio.run(main())

    return run
