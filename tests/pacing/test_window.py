"""The sliding window alone: n departures per span, counted from when requests really left."""

from __future__ import annotations

from ometria_sync.pacing.slot import Slot
from ometria_sync.pacing.window import Window


def _window(*slots: Slot, span: float = 1.0) -> Window:
    window = Window()
    for slot in slots:
        window.add(slot, slot.at, span)
    return window


def test_fewer_than_n_departures_never_hold_the_next() -> None:
    assert _window(Slot(0.0), Slot(0.25)).ready_at(0.3, 3, 1.0) == -float("inf")


def test_the_next_departure_waits_a_span_after_the_nth_latest() -> None:
    """Four departures at 4/s: the fifth waits until the first is a span old."""
    window = _window(Slot(0.0), Slot(0.25), Slot(0.5), Slot(0.75), span=1.02)
    assert window.ready_at(0.8, 4, 1.02) == 1.02
    assert window.ready_at(0.8, 3, 1.02) == 0.25 + 1.02


def test_a_departure_reported_late_counts_from_when_it_left() -> None:
    first = Slot(0.0)
    window = _window(first, Slot(0.25))
    first.sent(0.4)
    assert window.ready_at(0.5, 2, 1.0) == 1.25


def test_an_unconfirmed_slot_counts_as_leaving_now() -> None:
    """A request still connecting holds the window forward, whatever its grant time."""
    window = _window(Slot(0.0, confirmed=False), Slot(0.25))
    assert window.ready_at(0.5, 2, 1.0) == 1.25
    assert window.ready_at(3.0, 2, 1.0) == 1.25  # ... as long as it is the older one
    assert window.ready_at(3.0, 1, 1.0) == 4.0


def test_old_departures_are_forgotten_but_never_an_unconfirmed_one() -> None:
    assert _window(Slot(0.0), Slot(5.0)).ready_at(5.1, 2, 1.0) == -float("inf")
    assert _window(Slot(0.0, confirmed=False), Slot(5.0)).ready_at(5.1, 2, 1.0) == 6.0
