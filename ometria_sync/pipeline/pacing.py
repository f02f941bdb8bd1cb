"""What the pipeline asks of a pacer, whichever one it has.

Two implementations: :class:`~ometria_sync.pipeline.pacer.Pacer` (one process owns the
account's budget) and :class:`~ometria_sync.pipeline.shared_budget.SharedBudget` (processes
anywhere share it through Redis). The dispatchers and ``job_run`` see only this protocol.
"""

from __future__ import annotations

from typing import Protocol

from ometria_sync.pipeline.backoff import Backoff


class Departure(Protocol):
    """One granted departure. ``sent(at)`` moves it to when the request really left (a loop
    time, never earlier than granted), so that later departures count from there."""

    def sent(self, at: float) -> None: ...


class RatePacer(Protocol):
    """Evenly spaced departures within the account's rate limit, shared by all dispatchers."""

    @property
    def rate(self) -> float:
        """The rate in force now (requests/s)."""
        ...

    async def acquire(self) -> Departure:
        """Wait for a departure slot and return it."""
        ...

    def throttled(
        self, backoff: Backoff, retry_after: float | None, queue_remaining: int | None = None
    ) -> float:
        """A 429 arrived: pause everybody and return the pause (``retry_after`` a floor)."""
        ...

    def on_success(self) -> None:
        """A request was accepted."""
        ...

    def observe_queue(self, remaining: int | None, limit: int | None) -> None:
        """Ometria's import queue headers: slow down while it is nearly full."""
        ...
