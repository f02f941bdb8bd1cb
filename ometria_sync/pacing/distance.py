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
_SAMPLES = 32
#: from this many on, the lowest counts
_MIN_SAMPLES = 8


class Distance:
    """``value``: the lowest recent round trip (s) once there are a few (the second-lowest
    before: one stray early failure, a reset right after the write, cannot make a far
    process look near), or None before the first answer."""

    def __init__(self) -> None:
        self._samples: deque[float] = deque(maxlen=_SAMPLES)

    def observe(self, seconds: float) -> None:
        self._samples.append(max(seconds, 0.0))

    @property
    def value(self) -> float | None:
        if not self._samples:
            return None
        ordered = sorted(self._samples)
        return ordered[0] if len(ordered) >= _MIN_SAMPLES else ordered[min(1, len(ordered) - 1)]
