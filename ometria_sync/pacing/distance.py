"""How far this process is from Ometria, for the shared budget's window.

Processes at different network distances turn evenly spaced departures into bunched arrivals
(a farther one's request arrives later than it left, next to a nearer one's). Each process
measures its own distance as a low round trip, body written to answer read, over its recent
requests (the server's own time is in every sample, alike for every process, so the
*difference* between processes is the difference of their paths), and publishes it with every
call; the script widens every window by the spread between the farthest and the nearest
departing process.
"""

from __future__ import annotations

from collections import deque

#: recent round trips kept
_SAMPLES = 128
#: round trips needed before the lowest counts
_MIN_SAMPLES = 3


class Distance:
    """``value``: the lowest recent round trip (s), or None before ``_MIN_SAMPLES`` of them
    (one answer's round trip holds the server's time of that one answer: a near process would
    look far, and the spread too small; meanwhile the script counts the process as unmeasured,
    which widens every window by a fixed allowance)."""

    def __init__(self) -> None:
        self._samples: deque[float] = deque(maxlen=_SAMPLES)

    def observe(self, seconds: float) -> None:
        self._samples.append(max(seconds, 0.0))

    @property
    def value(self) -> float | None:
        if len(self._samples) < _MIN_SAMPLES:
            return None
        return min(self._samples)
