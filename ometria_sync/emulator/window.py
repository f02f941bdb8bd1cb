"""A sliding one-second window over arrival times, as a strict rate limiter counts them."""

from __future__ import annotations

from collections import deque


class SlidingWindow:
    """Counts events in the last ``span`` seconds. ``peak`` is the most ever seen in one span
    (the maximum over all windows is reached at some arrival, so checking at arrivals suffices)."""

    def __init__(self, span: float = 1.0) -> None:
        self.span = span
        self._times: deque[float] = deque()
        self.peak = 0

    def add(self, now: float) -> int:
        """Record an event at ``now``; return how many fall in the window ending at ``now``."""
        times = self._times
        while times and times[0] <= now - self.span:
            times.popleft()
        times.append(now)
        self.peak = max(self.peak, len(times))
        return len(times)

    def count(self, now: float) -> int:
        return sum(1 for t in self._times if t > now - self.span)
