"""The even grid: each departure is due one interval after the previous one was *due*.

Why "due" and not "left": a late wake-up (a busy event loop) is then made up for by the next
few departures instead of lost, so the pacer keeps to the limit. Guarantees: two departures
are never closer than ``MIN_SPACING`` of an interval, and a departure more than ``CATCH_UP``
late (nothing to send, a pause, the very first one) restarts the grid where it left, so no
burst follows an idle spell. The grid alone does not hold the limit: the sliding window
(:mod:`ometria_sync.pacing.window`) is checked for every departure.
"""

from __future__ import annotations

#: lateness made up for by closer departures (seconds); a departure later than that (nothing to
#: send, a pause) restarts the grid instead, so that no burst follows
CATCH_UP = 0.1
#: closest spacing while catching up, as a fraction of the even interval
MIN_SPACING = 0.5


class Grid:
    """When the next departure is due at ``even``-second intervals (loop times)."""

    __slots__ = ("due", "last")

    def __init__(self) -> None:
        self.due = -float("inf")  # when the next departure is due on the grid
        self.last = -float("inf")  # when the last one left

    def ready_at(self, even: float) -> float:
        """The earliest the next departure may leave by the grid."""
        return max(self.due, self.last + MIN_SPACING * even)

    def depart(self, now: float, paused_until: float, even: float) -> None:
        """A departure left at ``now``: place it on the grid (no earlier than the end of a
        pause) and make the next one due ``even`` seconds after that place."""
        place = max(self.due, paused_until)
        if now - place > CATCH_UP:
            place = now
        self.due = place + even
        self.last = now
