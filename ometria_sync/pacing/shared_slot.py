"""One departure the shared budget granted, and what the HTTP client tells it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the budget makes slots
    from ometria_sync.pacing.shared_budget import SharedBudget

#: a departure later than its slot by more than this (s) is reported to Redis
_LATE = 0.001


class SharedSlot:
    """A departure granted by :meth:`SharedBudget.acquire` (loop time ``at``). A departure
    that really left more than a millisecond late is moved in Redis (never earlier), so every
    process's later departures count from there."""

    __slots__ = ("_budget", "at", "member")

    def __init__(self, budget: SharedBudget, member: str, at: float) -> None:
        self._budget = budget
        self.member = member
        self.at = at

    def sent(self, at: float) -> None:
        if at > self.at + _LATE:
            self.at = at
            self._budget.report_sent(self.member, at)

    def done(self, *, jitter: float | None = None) -> None:
        """The request is over; the network's variation of delay widens the slack that every
        process's reservations keep (it is sent with this process's next reservation)."""
        if jitter is not None:
            self._budget.observe_network(jitter)
