"""The rate in force: the configured limit, lowered by AIMD and by the import queue's pressure.

Two pressures from Ometria lower it, each for its own reason. Repeated 429s for a full (or
unknown) import queue, or rate 429s that go on once the margin can widen no further (the
account's limit is lower than configured), halve it; each success wins back 2% of the limit
(AIMD). ``X-QueueSize-Remaining`` under a fifth of the queue scales it down before a 429 comes.
Guarantees: the rate never exceeds the limit nor falls under ``min_rate_fraction`` of it; it
is halved at most once a second; a lone 429 (none other within ``REPEAT_WINDOW``) never cuts.
"""

from __future__ import annotations

#: 429s closer together than this (seconds) count as "repeated" and cut the rate
REPEAT_WINDOW = 10.0
#: fraction of the import queue under which pushes slow down
QUEUE_LOW_WATER = 0.2


class RateControl:
    """``current``: the rate in force now (requests/s), kept up to date on every change so
    that the pacer's hot path reads an attribute."""

    __slots__ = ("_aimd", "_last_429", "_last_cut", "_min", "_queue_limit", "current", "limit",
                 "queue_factor")

    def __init__(self, limit: float, min_rate_fraction: float) -> None:
        self.limit = limit
        self._min = limit * min_rate_fraction
        self._aimd = limit
        #: the share of the limit the import queue's fill leaves (1.0 with room to spare)
        self.queue_factor = 1.0
        self._queue_limit: int | None = None
        self._last_429: float | None = None
        self._last_cut = -float("inf")
        self.current = limit
        self._update()

    def on_429(self, now: float, *, jitter: bool) -> None:
        """A 429 arrived at ``now``. Another within ``REPEAT_WINDOW`` s halves the rate (at
        most once a second) unless it is ``jitter``: a rate 429 the margin can still answer."""
        last = self._last_429
        repeated = last is not None and now - last < REPEAT_WINDOW
        if repeated and not jitter and now - self._last_cut >= 1.0:
            self._aimd = max(self._min, self._aimd / 2)
            self._last_cut = now
            self._update()
        self._last_429 = now

    def on_success(self) -> None:
        """A request was accepted: win back 2% of the limit, never above it."""
        if self._aimd < self.limit:
            self._aimd = min(self.limit, self._aimd + self.limit * 0.02)
            self._update()

    def observe_queue(self, remaining: int | None, limit: int | None) -> None:
        """Scale the rate down while Ometria's import queue is nearly full. ``limit`` may be
        None (a 429 carries only the remaining count): the last limit seen is used."""
        limit = limit or self._queue_limit
        if remaining is None or not limit or limit <= 0:
            return
        self._queue_limit = limit
        low_water = limit * QUEUE_LOW_WATER
        self.queue_factor = 1.0 if remaining >= low_water else max(0.0, remaining / low_water)
        self._update()

    def _update(self) -> None:
        self.current = max(self._min, min(self._aimd, self.limit * self.queue_factor))
