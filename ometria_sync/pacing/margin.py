"""The margin: the fraction of each interval kept free for jitter the pacer cannot see.

A 429 while the import queue has room means the server's clock saw more than the limit in some
second. The margin answers that, traded against the 429s themselves, whichever costs fewer
departures: a 429 costs about two (the refused request sent again, and the pause), a margin
``m`` costs ``m * rate`` a second. Guarantees: the margin stays between the configured one and
``MAX_MARGIN``; the 429s of one burst of in-flight requests (within a second) are one episode
and widen it at most once; it narrows only after a quiet spell that pays for the narrowing.
"""

from __future__ import annotations

#: the most the margin grows to after 429s
MAX_MARGIN = 0.04


class Margin:
    """``value``: the margin in force now; ``last_429``: when the latest 429 came (loop time)."""

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
