"""The measured part of the pacer's slack: how late departures leave, or how much the network's
delay varies, whichever is more, capped.

Lateness is a high percentile of wake-up lateness (a busy event loop); network variation a high
percentile of what the HTTP client reports with each answer (the kernel's round-trip variation
of the connection). Not the spread of answer times: that is mostly the server's own work, not a
shift of arrivals (BENCHMARKS.md says what covering it cost).
"""

from __future__ import annotations

from collections import deque

#: recent lateness and network samples kept
_SAMPLES = 64
#: samples needed before a measure counts
_MIN_SAMPLES = 8


def _high(samples: deque[float]) -> float:
    """The 90th percentile of ``samples`` (not empty)."""
    ordered = sorted(samples)
    return ordered[int(0.9 * (len(ordered) - 1))]


class Jitter:
    """``measured``: the seconds of slack the recent samples ask for, never above ``cap``."""

    def __init__(self, cap: float, *, catch_up: float) -> None:
        self._cap = cap
        self._catch_up = catch_up  # lateness beyond this restarts the grid: counted as this
        self._lateness: deque[float] = deque(maxlen=_SAMPLES)
        self._network: deque[float] = deque(maxlen=_SAMPLES)
        self.measured = 0.0

    def observe_lateness(self, late: float) -> None:
        self._lateness.append(min(max(late, 0.0), self._catch_up))
        self._measure()

    def observe_network(self, seconds: float) -> None:
        self._network.append(max(seconds, 0.0))
        self._measure()

    def _measure(self) -> None:
        late = _high(self._lateness) if len(self._lateness) >= _MIN_SAMPLES else 0.0
        network = _high(self._network) if len(self._network) >= _MIN_SAMPLES else 0.0
        self.measured = min(self._cap, max(late, network))
