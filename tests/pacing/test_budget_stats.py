"""What a process saw of the shared budget: counts, rates, percentiles, bounded samples."""

from __future__ import annotations

import pytest

from ometria_sync.pacing.budget_stats import BudgetStats


def test_granted_departures_give_the_rate_this_process_got() -> None:
    stats = BudgetStats(url="redis://h/0")
    stats.granted(10.0, 0.1, 0.002)
    assert stats.requests_per_second is None  # one departure is no rate
    for at in (10.5, 11.0, 12.0):
        stats.granted(at, 0.1, 0.002)
    assert (stats.requests, stats.first_at, stats.last_at) == (4, 10.0, 12.0)
    assert stats.requests_per_second == pytest.approx(1.5)


def test_round_trips_add_up() -> None:
    stats = BudgetStats(url="redis://h/0")
    stats.round_trip(0.002)
    stats.round_trip(0.003)
    assert stats.round_trips == 2 and stats.redis_seconds == pytest.approx(0.005)


def test_percentiles_in_milliseconds_over_bounded_samples() -> None:
    """The samples keep the latest few thousand: memory stays bounded on a long run."""
    stats = BudgetStats(url="redis://h/0")
    assert stats.percentile_ms("waits", 0.5) is None
    for i in range(20_000):
        stats.sample(i / 1000, 0.001)
    assert len(stats.waits) <= 10_000 and stats.waits[-1] == 19.999
    assert stats.percentile_ms("lateness", 0.99) == 1.0
    assert stats.percentile_ms("waits", 0.0) == pytest.approx(stats.waits[0] * 1000)
