"""Exponential backoff with jitter.

"Equal jitter" (a uniform draw in ``[c/2, c]`` where ``c = min(cap, base * 2**attempt)``) spreads
the retries of many dispatchers apart instead of having them hit the server together, while still
waiting at least half the exponential delay. A server's ``Retry-After``
is a floor: we never retry sooner than it asked.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Delays for successive attempts. ``rand`` is injected for deterministic tests."""

    def __init__(
        self,
        base: float = 0.5,
        cap: float = 30.0,
        *,
        rand: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.base = base
        self.cap = cap
        self._rand = rand

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 0)."""
        ceiling = min(self.cap, self.base * (2 ** min(attempt, 32)))
        jittered = self._rand(ceiling / 2, ceiling)
        return max(jittered, retry_after or 0.0)
