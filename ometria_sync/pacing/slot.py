"""One departure the in-process pacer granted, and what the HTTP client tells it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the pacer makes slots
    from ometria_sync.pacing.pacer import Pacer


class Slot:
    """One departure granted by :meth:`Pacer.acquire`. ``sent(at)`` moves it to when the request
    really left (never earlier than granted), so that later departures count from there.

    A slot granted with ``until_sent=True`` is *unconfirmed* until ``sent`` or ``done`` is
    called, and counts as leaving no earlier than now meanwhile. ``done(jitter=...)`` after an
    answer feeds the network's measured variation of delay to the slack."""

    __slots__ = ("_pacer", "at", "confirmed")

    def __init__(self, at: float, pacer: Pacer | None = None, *, confirmed: bool = True) -> None:
        self.at = at
        self.confirmed = confirmed
        self._pacer = pacer

    def __deepcopy__(self, memo: dict[int, object]) -> Slot:
        """A slot is a handle on the shared pacer, never copied (aioresponses deep-copies the
        request's arguments, ``on_sent`` included)."""
        return self

    def sent(self, at: float) -> None:
        if at > self.at:
            self.at = at
        self.confirmed = True

    def done(self, *, jitter: float | None = None) -> None:
        """The request is over. Never reported sent: it counts as having left now (it may
        have been written as it failed). ``jitter``: the network's variation of delay seen
        with the answer (seconds), if known."""
        pacer = self._pacer
        if pacer is None:
            return
        if not self.confirmed:
            self.sent(pacer.now())
        if jitter is not None:
            pacer.observe_network(jitter)
