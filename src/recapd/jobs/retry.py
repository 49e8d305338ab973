"""Retry policy: exponential backoff with jitter, capped."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Delay before attempt n+1: base * 2**(n-1), capped at `max_s`, with "equal jitter"
    (half fixed, half random) so a burst of failures does not retry in lockstep."""

    base_s: float
    max_s: float

    def delay_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        exp: float = min(self.max_s, self.base_s * 2.0 ** max(0, attempt - 1))
        r: float = (rng or random).random()
        return exp / 2 + r * exp / 2
