"""Pauses alone: extended never shortened; one backoff step per pause, ended by a success."""

from __future__ import annotations

from ometria_sync.pacing.pauses import Pauses


def test_a_pause_is_extended_never_shortened() -> None:
    pauses = Pauses()
    pauses.hold(5.0)
    pauses.hold(1.0)
    assert pauses.until == 5.0
    pauses.hold(7.0)
    assert pauses.until == 7.0


def test_429s_for_requests_in_flight_during_a_pause_reuse_its_step() -> None:
    pauses = Pauses()
    assert pauses.count_429(0.0) == 1
    pauses.hold(1.0)
    assert pauses.count_429(0.5) == 1  # sent before the pause: same step
    assert pauses.count_429(1.0) == 2  # sent after it: the next step
    pauses.end_streak()
    assert pauses.count_429(0.5) == 0  # in flight, after a success: no step yet
    assert pauses.count_429(2.0) == 1
