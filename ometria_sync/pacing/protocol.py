"""What the pipeline asks of a pacer, whichever one it has.

Two implementations: :class:`~ometria_sync.pacing.pacer.Pacer` (one process owns the
account's budget) and :class:`~ometria_sync.pacing.shared_budget.SharedBudget` (processes
anywhere share it through Redis). The dispatchers and ``job_run`` see only this protocol.
"""

from __future__ import annotations

from typing import Protocol

from ometria_sync.net.backoff import Backoff


class Departure(Protocol):
    """One granted departure. ``sent(at)`` moves it to when the request really left (a loop
    time, never earlier than granted), so that later departures count from there."""

    def sent(self, at: float) -> None: ...

    def done(self, *, jitter: float | None = None) -> None:
        """The request is over (answered or failed); ``jitter``: the network's variation of
        delay seen with the answer, if known, for the measured slack."""
        ...


class RatePacer(Protocol):
    """Evenly spaced departures within the account's rate limit, shared by all dispatchers."""

    @property
    def rate(self) -> float:
        """The rate in force now (requests/s)."""
        ...

    @property
    def slack(self) -> float:
        """Seconds kept free over any window of the limit's departures, beyond one second."""
        ...

    @property
    def largest_slack(self) -> float:
        """The widest slack in force so far (for the run report)."""
        ...

    async def acquire(self, *, until_sent: bool = False) -> Departure:
        """Wait for a departure slot and return it; with ``until_sent`` it counts as leaving
        no earlier than now until ``sent`` or ``done`` is called."""
        ...

    def pause(self, seconds: float) -> None:
        """No request leaves for ``seconds`` from now, in any dispatcher (a Retry-After)."""
        ...

    def throttled(
        self, backoff: Backoff, retry_after: float | None, queue_remaining: int | None = None
    ) -> float:
        """A 429 arrived (the one entry point for it): pause everybody and return the pause.
        ``retry_after`` is a floor; ``queue_remaining`` over 0 says the import queue had room,
        so it was the rate, not a full queue."""
        ...

    def on_success(self) -> None:
        """A request was accepted."""
        ...

    def observe_queue(self, remaining: int | None, limit: int | None) -> None:
        """Ometria's import queue headers: slow down while it is nearly full."""
        ...
