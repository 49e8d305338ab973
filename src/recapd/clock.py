"""Injected time: code asks a Clock for "now" so tests can move time instead of sleeping."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """A source of the current time in epoch milliseconds (UTC)."""

    def now_ms(self) -> int: ...


class SystemClock:
    """The real wall clock."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class FakeClock:
    """A clock tests set and advance by hand; thread-safe."""

    def __init__(self, start_ms: int = 0) -> None:
        self._now = start_ms
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            return self._now

    def set(self, ms: int) -> None:
        with self._lock:
            self._now = ms

    def advance(self, ms: int) -> int:
        """Move time forward by `ms` and return the new now."""
        with self._lock:
            self._now += ms
            return self._now
