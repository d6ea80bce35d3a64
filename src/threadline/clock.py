"""The server's clock: where expiry, leases and sweeps read the time.

The Runtime holds one Clock and passes it down. Production uses SystemClock; tests use ManualClock and move time
forward with ``advance()`` instead of sleeping, so run expiry, leases and upload expiry are tested at once.

Times are whole Unix seconds (``now()``), the unit of every ``*_at`` column and field.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def now(self) -> int:
        """The current time in whole Unix seconds."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> int:
        return int(time.time())


class ManualClock:
    """A clock that moves only when told to: ``advance(seconds)``. Starts at the wall clock's time (or ``start``)
    so timestamps written with the wall clock and deadlines read with this one stay comparable."""

    def __init__(self, start: float | None = None) -> None:
        self._t = float(time.time() if start is None else start)

    def now(self) -> int:
        return int(self._t)

    def advance(self, seconds: float) -> int:
        """Move forward by `seconds` (>= 0); returns the new now()."""
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._t += seconds
        return self.now()
