"""The server's clock: where expiry, leases and sweeps read the time and set their timers.

The Runtime holds one Clock and passes it down. Production uses SystemClock; tests use ManualClock and move time
forward with ``advance()`` instead of sleeping (due timers fire inside ``advance``), so run expiry, leases and
upload expiry are tested at once.

``now()`` is whole Unix seconds, the unit of every ``*_at`` column and field; ``time()`` the same with a fraction.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable


class Timer(Protocol):
    def cancel(self) -> None: ...


@runtime_checkable
class Clock(Protocol):
    def now(self) -> int:
        """The current time in whole Unix seconds."""
        ...

    def time(self) -> float:
        """The current time in Unix seconds."""
        ...

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer:
        """Call `callback` (on the running event loop) after `delay_s` seconds of this clock; cancel() stops it."""
        ...


class SystemClock:
    """The wall clock and the event loop's timers."""

    def now(self) -> int:
        return int(time.time())

    def time(self) -> float:
        return time.time()

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(max(0.0, delay_s), callback)


class _ManualTimer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that moves only when told to: ``advance(seconds)``, which also fires the timers that fell due.
    Starts at the wall clock's time (or ``start``) so timestamps written with the wall clock and deadlines read
    with this one stay comparable. Use it from the event loop's thread."""

    def __init__(self, start: float | None = None) -> None:
        self._t = float(time.time() if start is None else start)
        self._timers: list[tuple[float, int, _ManualTimer, Callable[[], None]]] = []
        self._seq = itertools.count()

    def now(self) -> int:
        return int(self._t)

    def time(self) -> float:
        return self._t

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer:
        timer = _ManualTimer()
        heapq.heappush(self._timers, (self._t + max(0.0, delay_s), next(self._seq), timer, callback))
        return timer

    def advance(self, seconds: float) -> int:
        """Move forward by `seconds` (>= 0), firing due timers in order; returns the new now()."""
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._t += seconds
        while self._timers and self._timers[0][0] <= self._t:
            _, _, timer, callback = heapq.heappop(self._timers)
            if not timer.cancelled:
                callback()
        return self.now()
