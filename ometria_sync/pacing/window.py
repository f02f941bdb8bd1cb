"""The sliding window: at most ``n`` departures in any ``span`` seconds.

This is the rule that holds the limit in every second a strict server may count, whatever the
grid does; ``span`` is a second plus the pacer's slack. Departures count from when their
requests really left (:meth:`Slot.sent`), and a slot not yet confirmed sent counts as leaving
no earlier than now, so a request stuck in connect pushes the window forward instead of
letting another one in. Guarantee: a departure is forgotten only once it is too old to share a
window with any later one, and an unconfirmed one never is.
"""

from __future__ import annotations

import heapq

from ometria_sync.pacing.grid import CATCH_UP
from ometria_sync.pacing.slot import Slot


class Window:
    """The recent departures, in grant order."""

    __slots__ = ("_recent",)

    def __init__(self) -> None:
        self._recent: list[Slot] = []

    def ready_at(self, now: float, n: int, span: float) -> float:
        """The earliest the next departure may leave without ``n + 1`` in ``span`` seconds
        (``-inf`` while fewer than ``n`` are remembered)."""
        recent = self._recent
        if len(recent) < n:
            return -float("inf")
        # an unconfirmed slot leaves no earlier than now
        times = [s.at if s.confirmed else max(s.at, now) for s in recent]
        return heapq.nlargest(n, times)[-1] + span

    def add(self, slot: Slot, now: float, span: float) -> None:
        """Remember ``slot`` (granted at ``now``) and forget the departures too old to share a
        ``span`` with any later one (never an unconfirmed one: it may leave any time)."""
        oldest = now - span - CATCH_UP
        self._recent = [s for s in self._recent if s.at > oldest or not s.confirmed]
        self._recent.append(slot)
