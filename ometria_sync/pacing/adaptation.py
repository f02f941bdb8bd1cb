"""How the pace reacts: the margin, the rate in force (AIMD and the import queue), the jitter.

The in-process :class:`~ometria_sync.pacing.pacer.Pacer` decides when a request may leave; the
three classes here are what it learns from Ometria's answers and its own clock, each keeping
its own guarantees:

* :class:`Margin`, the fraction of each interval kept free for jitter the pacer cannot see;
* :class:`RateControl`, the rate in force: the configured limit, lowered by AIMD and by the
  import queue's pressure;
* :class:`Jitter`, the measured part of the pacer's slack.
"""

from __future__ import annotations

from collections import deque

#: the most the margin grows to after 429s
MAX_MARGIN = 0.04
#: 429s closer together than this (seconds) count as "repeated" and cut the rate
REPEAT_WINDOW = 10.0
#: fraction of the import queue under which pushes slow down
QUEUE_LOW_WATER = 0.2
#: recent lateness and network samples kept
_SAMPLES = 64
#: samples needed before a measure counts
_MIN_SAMPLES = 8


class Margin:
    """The margin: the fraction of each interval kept free for jitter the pacer cannot see.
    ``value``: the margin in force now; ``last_429``: when the latest 429 came (loop time).

    A 429 while the import queue has room means the server's clock saw more than the limit in
    some second. The margin answers that, traded against the 429s themselves, whichever costs
    fewer departures: a 429 costs about two (the refused request sent again, and the pause), a
    margin ``m`` costs ``m * rate`` a second. Guarantees: the margin stays between the
    configured one and ``MAX_MARGIN``; the 429s of one burst of in-flight requests (within a
    second) are one episode and widen it at most once; it narrows only after a quiet spell
    that pays for the narrowing."""

    __slots__ = ("_base", "_set_at", "_throttles", "last_429", "value")

    def __init__(self, base: float) -> None:
        self.value = base
        self._base = base
        self._set_at = -float("inf")  # when the margin last changed
        self._throttles = 0  # 429s since then
        self.last_429: float | None = None

    @property
    def can_widen(self) -> bool:
        return self.value < MAX_MARGIN

    @property
    def widened(self) -> bool:
        return self.value > self._base

    def on_429(self, now: float, rate: float, started: float) -> None:
        """A 429 arrived at ``now``; the first of an episode may widen the margin.

        When the 429s since the margin was set (or since the first departure, ``started``)
        cost more than the margin did over that time, it doubles (up to ``MAX_MARGIN``): at 4
        requests/s a 429 within 100 s of the start does, at 200/s only 429s more often than
        one a second do."""
        last = self.last_429
        self._throttles += 1
        if last is None or now - last >= 1.0:
            spent = self.value * rate * (now - max(self._set_at, started))
            if 2.0 * self._throttles > spent and self.value < MAX_MARGIN:
                self._set(now, min(MAX_MARGIN, self.value * 2))
        self.last_429 = now

    def narrow(self, now: float, rate: float) -> None:
        """After a spell without a 429 as long as would pay for two of them at half the margin
        (``4 / (m * rate)`` seconds: 100 s at 1% and 4/s, 2 s at 1% and 200/s), the margin
        halves, down to the configured one."""
        quiet = now - max(self._set_at, self.last_429 or -float("inf"))
        if quiet * rate * self.value >= 4.0:
            self._set(now, max(self._base, self.value / 2))

    def _set(self, now: float, margin: float) -> None:
        self.value = margin
        self._set_at = now
        self._throttles = 0


class RateControl:
    """The rate in force: the configured limit, lowered by AIMD and by the import queue's
    pressure. ``current``: the rate in force now (requests/s), kept up to date on every change
    so that the pacer's hot path reads an attribute.

    Two pressures from Ometria lower it, each for its own reason. Repeated 429s for a full (or
    unknown) import queue, or rate 429s that go on once the margin can widen no further (the
    account's limit is lower than configured), halve it; each success wins back 2% of the
    limit (AIMD). ``X-QueueSize-Remaining`` under a fifth of the queue scales it down before a
    429 comes. Guarantees: the rate never exceeds the limit nor falls under
    ``min_rate_fraction`` of it; it is halved at most once a second; a lone 429 (none other
    within ``REPEAT_WINDOW``) never cuts."""

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


def _high(samples: deque[float]) -> float:
    """The 90th percentile of ``samples`` (not empty)."""
    ordered = sorted(samples)
    return ordered[int(0.9 * (len(ordered) - 1))]


class Jitter:
    """The measured part of the pacer's slack: how late departures leave, or how much the
    network's delay varies, whichever is more, capped. ``measured``: the seconds of slack the
    recent samples ask for, never above ``cap``.

    Lateness is a high percentile of wake-up lateness (a busy event loop); network variation a
    high percentile of what the HTTP client reports with each answer (the kernel's round-trip
    variation of the connection). Not the spread of answer times: that is mostly the server's
    own work, not a shift of arrivals (BENCHMARKS.md says what covering it cost)."""

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
