"""How the pace reacts, each mechanism alone: the margin (widened when 429s cost more than it
would, narrowed after a quiet spell) and the rate in force (AIMD on repeated 429s, and the
import queue's pressure)."""

from __future__ import annotations

import pytest

from ometria_sync.pacing.adaptation import MAX_MARGIN, REPEAT_WINDOW, Margin, RateControl


def test_a_429_that_costs_more_than_the_margin_did_doubles_it() -> None:
    """At 4/s, 10 s at 0.5% spent 0.2 departures; a 429 costs 2: the margin doubles."""
    margin = Margin(0.005)
    margin.on_429(10.0, 4.0, 0.0)
    assert margin.value == 0.01 and margin.widened


def test_rare_429s_at_a_high_rate_keep_the_margin() -> None:
    """At 200/s, 5 s at 0.5% spent 5 departures, more than one 429's 2."""
    margin = Margin(0.005)
    margin.on_429(5.0, 200.0, 0.0)
    assert margin.value == 0.005 and not margin.widened


def test_the_429s_of_one_episode_widen_once_and_never_past_the_cap() -> None:
    margin = Margin(0.005)
    margin.on_429(10.0, 4.0, 0.0)
    margin.on_429(10.5, 4.0, 0.0)  # within a second: the same episode
    assert margin.value == 0.01
    for t in (12.0, 14.0, 16.0, 18.0):
        margin.on_429(t, 4.0, 0.0)
    assert margin.value == MAX_MARGIN and not margin.can_widen


def test_a_quiet_spell_that_pays_for_two_429s_halves_it_down_to_the_base() -> None:
    """At 1% and 4/s: 100 s without a 429."""
    margin = Margin(0.005)
    margin.on_429(10.0, 4.0, 0.0)
    margin.narrow(109.0, 4.0)
    assert margin.value == 0.01
    margin.narrow(110.0, 4.0)
    assert margin.value == pytest.approx(0.005)
    margin.narrow(10_000.0, 4.0)
    assert margin.value == pytest.approx(0.005) and not margin.widened


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
