"""One version of a record in flight at a time: a later version waits for the earlier to settle.

Ometria merges records by id and the last write wins. Batches are sent by several dispatchers
and retried after failures, so without care a batch holding version 1 of ``c1`` can be retried
after the batch holding version 2 succeeded, and Ometria ends on version 1.

:class:`VersionOrder` prevents that. Each batch *claims* its ids when a dispatcher takes it
(batches are taken in the order they were cut, so claims follow the source's order); the claim
waits until every earlier batch still holding one of those ids has *settled* (acknowledged,
dead-lettered, failed or cancelled), then the batch is sent. One order serves every stream of a
record type in the run, so two streams of contacts never race on one id either.

Guarantees: a batch never waits for a later one (claims point backwards only), so the earliest
unsettled batch always makes progress; memory holds only the ids of unsettled batches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


class Claim:
    """A batch's hold on its ids, from when it was taken until :meth:`release`."""

    __slots__ = ("_after", "_ids", "_order", "_settled")

    def __init__(self, order: VersionOrder, ids: list[int], after: list[Claim]) -> None:
        self._order = order
        self._ids = ids
        self._after = after
        self._settled = asyncio.Event()

    @property
    def waits_for(self) -> int:
        """How many earlier batches this one must let settle first."""
        return sum(1 for claim in self._after if not claim._settled.is_set())

    async def ready(self) -> None:
        """Return once every earlier batch holding one of these ids has settled."""
        for claim in self._after:
            await claim._settled.wait()
        self._after = []

    def release(self) -> None:
        """This batch settled (whatever the outcome): later versions may go. Idempotent."""
        if self._settled.is_set():
            return
        self._settled.set()
        self._order._release(self)


class VersionOrder:
    """Which unsettled batch holds the latest version of each id (by its ``order_key``)."""

    def __init__(self) -> None:
        self._holder: dict[int, Claim] = {}

    def claim(self, ids: Iterable[int]) -> Claim:
        """Claim ``ids`` for a batch. Call in the order the batches are to be sent, without
        awaiting in between; then ``await claim.ready()`` before sending it."""
        held = list(ids)
        after = {id(c): c for c in (self._holder.get(i) for i in held) if c is not None}
        claim = Claim(self, held, list(after.values()))
        for i in held:
            self._holder[i] = claim
        return claim

    def _release(self, claim: Claim) -> None:
        for i in claim._ids:
            if self._holder.get(i) is claim:
                del self._holder[i]

    @property
    def held(self) -> int:
        """Ids held by unsettled batches (for tests and diagnostics)."""
        return len(self._holder)
