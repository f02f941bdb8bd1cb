"""What the pipeline asks of a pacer, whichever one it has, and what the run lock answers.

Two implementations of :class:`RatePacer`: :class:`~ometria_sync.pacing.pacer.Pacer` (one
process owns the account's budget) and :class:`~ometria_sync.pacing.shared_budget.SharedBudget`
(processes anywhere share it through Redis). The dispatchers and ``job_run`` see only this
protocol.

May a request leave now? The run lock's answer (:class:`SendPermit`), asked at every
departure. A run lock that can be lost without the process noticing (PostgreSQL's, across a
network) grants departures under a lease it renews on the server; :class:`PermittedPacer` asks
it before a slot is taken and again just before the request leaves, so no request starts once
the lease has run out. A lock that cannot be lost unnoticed (SQLite's ``flock``) always says
yes.
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


class SendPermit(Protocol):
    """The one hook the run lock implements for sending."""

    async def may_send(self) -> None:
        """Return when a request may leave now; wait while that is being checked; raise (a
        StateError: the run stops) when no request may leave any more."""
        ...


class PermittedPacer:
    """A :class:`RatePacer` whose departures also wait for ``permit``."""

    def __init__(self, pacer: RatePacer, permit: SendPermit) -> None:
        self._pacer = pacer
        self._permit = permit

    @property
    def rate(self) -> float:
        return self._pacer.rate

    @property
    def slack(self) -> float:
        return self._pacer.slack

    @property
    def largest_slack(self) -> float:
        return self._pacer.largest_slack

    async def acquire(self, *, until_sent: bool = False) -> Departure:
        await self._permit.may_send()  # a long wait (a fresh lock's) holds no slot
        slot = await self._pacer.acquire(until_sent=until_sent)
        try:
            await self._permit.may_send()  # the pacer may have waited past the lease
        except BaseException:
            slot.done()
            raise
        return slot

    def pause(self, seconds: float) -> None:
        self._pacer.pause(seconds)

    def throttled(
        self, backoff: Backoff, retry_after: float | None, queue_remaining: int | None = None
    ) -> float:
        return self._pacer.throttled(backoff, retry_after, queue_remaining)

    def on_success(self) -> None:
        self._pacer.on_success()

    def observe_queue(self, remaining: int | None, limit: int | None) -> None:
        self._pacer.observe_queue(remaining, limit)
