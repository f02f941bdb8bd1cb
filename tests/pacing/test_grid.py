"""The even grid alone: catch-up after late wake-ups, restart after idleness, closest spacing."""

from __future__ import annotations

import pytest

from ometria_sync.pacing.grid import CATCH_UP, Grid


def test_the_first_departure_starts_the_grid_where_it_left() -> None:
    """Nothing was due before the first departure: the next one is due an interval after it."""
    grid = Grid()
    assert grid.ready_at(0.25) == -float("inf")
    grid.depart(3.0, 0.0, 0.25)
    assert grid.due == 3.25


def test_a_late_departure_is_made_up_for_by_the_next() -> None:
    """Lateness up to CATCH_UP keeps the grid: the next departure is due an interval after
    this one was *due*, not after it left."""
    grid = Grid()
    grid.depart(0.0, 0.0, 0.25)
    grid.depart(0.25 + 0.06, 0.0, 0.25)  # 60 ms late
    assert grid.due == pytest.approx(0.5)


def test_lateness_beyond_catch_up_restarts_the_grid() -> None:
    """An idle spell is not lateness to make up: the grid restarts at the departure."""
    grid = Grid()
    grid.depart(0.0, 0.0, 0.25)
    now = 0.25 + CATCH_UP + 0.01
    grid.depart(now, 0.0, 0.25)
    assert grid.due == pytest.approx(now + 0.25)


def test_a_pause_moves_the_place_on_the_grid() -> None:
    """After a pause the departure's place is the pause's end, so no burst makes it up."""
    grid = Grid()
    grid.depart(0.0, 0.0, 0.25)
    grid.depart(2.05, 2.0, 0.25)
    assert grid.due == pytest.approx(2.25)


def test_catching_up_never_spaces_two_closer_than_half_an_interval() -> None:
    """At 10/s a departure 80 ms late makes the next one due 20 ms after it: it waits 50."""
    grid = Grid()
    grid.depart(0.0, 0.0, 0.1)
    grid.depart(0.18, 0.0, 0.1)
    assert grid.due == pytest.approx(0.2)
    assert grid.ready_at(0.1) == pytest.approx(0.23)
