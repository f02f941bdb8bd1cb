"""The rate in force alone: AIMD on repeated 429s, and the import queue's pressure."""

from __future__ import annotations

import pytest

from ometria_sync.pacing.rate import REPEAT_WINDOW, RateControl


def test_a_lone_429_keeps_the_rate_and_a_repeat_halves_it_once_a_second() -> None:
    rate = RateControl(8, 1 / 64)
    rate.on_429(0.0, jitter=False)
    assert rate.current == 8
    rate.on_429(0.2, jitter=False)
    rate.on_429(0.5, jitter=False)  # within a second of the cut
    assert rate.current == 4
    rate.on_429(1.5, jitter=False)
    assert rate.current == 2


def test_429s_further_apart_than_the_repeat_window_never_cut() -> None:
    rate = RateControl(8, 1 / 64)
    for i in range(4):
        rate.on_429(i * (REPEAT_WINDOW + 1), jitter=False)
    assert rate.current == 8


def test_jitter_429s_never_cut() -> None:
    """A rate 429 the margin can still answer is not a lower limit."""
    rate = RateControl(8, 1 / 64)
    for t in (0.0, 1.5, 3.0):
        rate.on_429(t, jitter=True)
    assert rate.current == 8


def test_successes_win_back_two_percent_of_the_limit_up_to_it() -> None:
    rate = RateControl(8, 1 / 64)
    rate.on_429(0.0, jitter=False)
    rate.on_429(0.1, jitter=False)
    rate.on_success()
    assert rate.current == pytest.approx(4 + 0.16)
    for _ in range(100):
        rate.on_success()
    assert rate.current == 8


def test_the_rate_never_falls_under_its_floor() -> None:
    rate = RateControl(4, 1 / 64)
    for i in range(20):
        rate.on_429(i * 1.5, jitter=False)
    assert rate.current == pytest.approx(4 / 64)


def test_queue_pressure_scales_the_rate_under_the_low_water_mark() -> None:
    rate = RateControl(4, 1 / 64)
    rate.observe_queue(40_000, 50_000)
    assert rate.current == 4 and rate.queue_factor == 1.0
    rate.observe_queue(5_000, 50_000)
    assert rate.current == pytest.approx(2.0) and rate.queue_factor == pytest.approx(0.5)
    rate.observe_queue(2_500, None)  # the last limit seen
    assert rate.current == pytest.approx(1.0)
    rate.observe_queue(None, 50_000)  # no header: no change
    assert rate.current == pytest.approx(1.0)
