"""What one process saw of the shared budget: for the progress display, the run report and
``plan``. Only measurements: nothing here decides when a request leaves."""

from __future__ import annotations

from typing import Literal

import msgspec

#: waits kept for the percentiles in the report
_SAMPLES = 5000


class BudgetStats(msgspec.Struct, kw_only=True):
    """What this process saw of the shared budget (for progress, the report and ``plan``)."""

    url: str
    #: processes that shared the budget: now, and the most at once during the run
    processes: int = 0
    max_processes: int = 0
    #: departures this process was granted, and when the first and the latest were
    requests: int = 0
    first_at: float | None = None
    last_at: float | None = None
    #: script calls and other Redis commands (``round_trips / requests`` per request)
    round_trips: int = 0
    #: seconds spent in Redis calls, summed
    redis_seconds: float = 0.0
    #: the shared rate last seen (requests/s)
    rate: float = 0.0
    #: the widest spread of the processes' distances to Ometria that widened the window (s)
    spread: float = 0.0
    #: calls that found Redis without its recent past (restart, new server, clock step) and
    #: held every process a full window
    holds: int = 0
    #: seconds from asking Redis to the slot granted (waiting for this process's turn), and
    #: from the slot to the departure Redis confirmed (sleep overshoot + one round trip), for
    #: the last few thousand departures
    waits: list[float] = msgspec.field(default_factory=list)
    lateness: list[float] = msgspec.field(default_factory=list)

    def round_trip(self, seconds: float) -> None:
        """One Redis command took ``seconds``."""
        self.round_trips += 1
        self.redis_seconds += seconds

    def granted(self, at: float, wait: float, late: float) -> None:
        """A departure at ``at`` (loop time), ``wait`` after it was asked for, ``late`` after
        its slot."""
        self.requests += 1
        if self.first_at is None:
            self.first_at = at
        self.last_at = at
        self.sample(wait, late)

    def sample(self, wait: float, late: float) -> None:
        for values, value in ((self.waits, wait), (self.lateness, late)):
            values.append(value)
            if len(values) > 2 * _SAMPLES:
                del values[:_SAMPLES]

    def percentile_ms(self, name: Literal["waits", "lateness"], q: float) -> float | None:
        """The ``q`` quantile (0-1) of ``waits`` or ``lateness``, in milliseconds."""
        values: list[float] = sorted(self.waits if name == "waits" else self.lateness)
        if not values:
            return None
        return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 3)

    @property
    def requests_per_second(self) -> float | None:
        """What this process got: departures per second between its first and latest."""
        if self.requests < 2 or self.first_at is None or self.last_at is None:
            return None
        span = self.last_at - self.first_at
        return (self.requests - 1) / span if span > 0 else None
