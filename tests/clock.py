"""A fake clock for timing tests: sleeping advances time instead of waiting."""

from __future__ import annotations

import asyncio
import random


class FakeClock:
    def __init__(self, overshoot: float = 0.0, seed: int = 1) -> None:
        self.now = 0.0
        self._overshoot = overshoot
        self._rand = random.Random(seed)

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Advance by ``seconds`` plus up to ``overshoot`` of scheduling lateness."""
        self.now += max(seconds, 0.0) + self._rand.uniform(0, self._overshoot)
        await asyncio.sleep(0)


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The most events inside any half-open window [t, t + window)."""
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
