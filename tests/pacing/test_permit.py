"""The run lock's say over departures: asked before a slot is taken and again before it leaves."""

from __future__ import annotations

import pytest

from ometria_sync.errors import StateError
from ometria_sync.pacing.pacer import Pacer
from ometria_sync.pacing.permit import PermittedPacer


class _Permit:
    def __init__(self, answers: list[bool]) -> None:
        self.answers = answers
        self.asked = 0

    async def may_send(self) -> None:
        self.asked += 1
        if not self.answers.pop(0):
            raise StateError("run lock lost")


class _Slot:
    def __init__(self) -> None:
        self.done_calls = 0

    def sent(self, at: float) -> None:
        pass

    def done(self, *, jitter: float | None = None) -> None:
        self.done_calls += 1


class _Pacer(Pacer):
    def __init__(self) -> None:
        super().__init__(4)
        self.slots: list[_Slot] = []

    async def acquire(self, *, until_sent: bool = False) -> _Slot:
        self.slots.append(_Slot())
        return self.slots[-1]


async def test_a_departure_asks_the_permit_before_and_after_its_slot() -> None:
    """A granted departure was allowed twice: before the wait for a slot and after it."""
    pacer, permit = _Pacer(), _Permit([True, True])
    slot = await PermittedPacer(pacer, permit).acquire(until_sent=True)
    assert permit.asked == 2 and slot is pacer.slots[0] and slot.done_calls == 0


async def test_a_permit_withdrawn_during_the_wait_gives_the_slot_back() -> None:
    """The lease ran out while the pacer waited: nothing leaves and the slot is released."""
    pacer, permit = _Pacer(), _Permit([True, False])
    with pytest.raises(StateError):
        await PermittedPacer(pacer, permit).acquire(until_sent=True)
    assert pacer.slots[0].done_calls == 1


async def test_no_slot_is_taken_without_the_permit() -> None:
    """A lost lock refuses before the pacer is even asked."""
    pacer = _Pacer()
    with pytest.raises(StateError):
        await PermittedPacer(pacer, _Permit([False])).acquire()
    assert pacer.slots == []
