"""One departure the shared budget granted, and what the HTTP client tells it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the budget makes slots
    from ometria_sync.pacing.shared_budget import SharedBudget

#: a departure later than its slot by more than this (s) is reported to Redis
_LATE = 0.001


class SharedSlot:
    """A departure granted by :meth:`SharedBudget.acquire` (loop time ``at``).

    Granted with ``until_sent``, it is *pending*: every process counts it as leaving no
    earlier than now until ``sent`` or ``done`` tells Redis when it really left (``sent``: when
    the body was written; ``done`` without ``sent``: now). Otherwise only a departure more
    than a millisecond late is moved in Redis (never earlier). The time from ``sent`` to
    ``done`` is a round trip: it measures this process's distance to Ometria."""

    __slots__ = ("_budget", "_pending", "_sent_at", "at", "member")

    def __init__(self, budget: SharedBudget, member: str, at: float, *,
                 pending: bool = False) -> None:
        self._budget = budget
        self._pending = pending
        self._sent_at: float | None = None
        self.member = member
        self.at = at

    def __deepcopy__(self, memo: dict[int, object]) -> SharedSlot:
        """A handle on the shared budget, never copied (aioresponses deep-copies arguments)."""
        return self

    def sent(self, at: float) -> None:
        if self._sent_at is not None:
            return
        self._sent_at = at
        late = at > self.at + _LATE
        if late:
            self.at = at
        if late or self._pending:
            self._pending = False
            self._budget.confirm(self.member, self.at)

    def done(self, *, jitter: float | None = None) -> None:
        """The request is over; the network's variation of delay widens the slack that every
        process's reservations keep (it is sent with this process's next reservation)."""
        if self._pending:
            self._pending = False
            self._budget.confirm(self.member, None)
        if self._sent_at is not None:
            self._budget.observe_distance(self._budget.now() - self._sent_at)
        if jitter is not None:
            self._budget.observe_network(jitter)
