"""May a request leave now? The run lock's answer, asked at every departure.

A run lock that can be lost without the process noticing (PostgreSQL's, across a network)
grants departures under a lease it renews on the server; :class:`PermittedPacer` asks it before
a slot is taken and again just before the request leaves, so no request starts once the lease
has run out. A lock that cannot be lost unnoticed (SQLite's ``flock``) always says yes.
"""

from __future__ import annotations

from typing import Protocol

from ometria_sync.net.backoff import Backoff
from ometria_sync.pacing.protocol import Departure, RatePacer


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
