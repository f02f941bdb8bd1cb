"""Pauses every dispatcher waits out, and the streak of 429s that makes them grow.

One pause holds every caller of the pacer, not only the one that got the 429 or the
``Retry-After``: the account's budget is shared. Guarantees: a pause is only ever extended,
never shortened; a 429 counts one more step of the streak only when its request was sent after
the current pause began to hold (a 429 for a request already in flight reuses the step), so
the answers of one burst do not escalate the backoff; a success ends the streak.
"""

from __future__ import annotations


class Pauses:
    """``until``: no departure before this loop time. ``streak``: 429 steps since a success."""

    __slots__ = ("streak", "until")

    def __init__(self) -> None:
        self.until = 0.0
        self.streak = 0

    def hold(self, until: float) -> None:
        """No departure before ``until`` (extends, never shortens, a pause)."""
        self.until = max(self.until, until)

    def count_429(self, now: float) -> int:
        """A 429 arrived at ``now``: the streak grows unless a pause still holds (its request
        was in flight). Returns the streak."""
        if now >= self.until:
            self.streak += 1
        return self.streak

    def end_streak(self) -> None:
        self.streak = 0
