"""The margin alone: widened when 429s cost more than it would, narrowed after a quiet spell."""

from __future__ import annotations

import pytest

from ometria_sync.pacing.margin import MAX_MARGIN, Margin


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
