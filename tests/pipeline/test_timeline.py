"""The request timeline: counts per second, bounded in size, always adding up to the totals."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ometria_sync.pipeline.stats import StreamStats
from ometria_sync.pipeline.timeline import MAX_BUCKETS, Timeline
from ometria_sync.schemas import Problem


def test_events_land_in_their_second() -> None:
    line = Timeline()
    for now in (100.0, 100.4, 101.2, 103.9):
        line.note("requests", now)
    line.note("throttled", 101.5)
    line.note("retries", 101.6)
    assert line.bucket_seconds == 1
    assert line.requests == [2, 1, 0, 1]
    assert line.throttled == [0, 1, 0, 0] and line.retries == [0, 1, 0, 0]
    assert line.started_at is not None


def test_a_long_run_widens_the_buckets_instead_of_growing() -> None:
    line = Timeline()
    line.note("requests", 0.0)
    line.note("requests", 10 * 3600.0)  # ten hours later
    assert len(line.requests) <= MAX_BUCKETS
    assert line.bucket_seconds == 16 and sum(line.requests) == 2
    assert line.requests[0] == 1 and line.requests[-1] == 1


@given(st.lists(st.tuples(st.sampled_from(["requests", "throttled", "retries"]),
                          st.floats(0, 50_000)), max_size=200))
def test_counts_add_up_and_stay_bounded(events: list[tuple[str, float]]) -> None:
    line = Timeline()
    for kind, offset in sorted(events, key=lambda e: e[1]):
        line.note(kind, 1000.0 + offset)  # type: ignore[arg-type]
    for kind in ("requests", "throttled", "retries"):
        assert sum(getattr(line, kind)) == sum(1 for k, _ in events if k == kind)
        assert len(getattr(line, kind)) <= MAX_BUCKETS


def test_stats_feed_the_timeline_and_keep_one_example_per_reason() -> None:
    stats = StreamStats("contacts")
    stats.request_sent(5.0)
    stats.count_throttled(5.2)
    stats.count_retry(5.3)
    stats.refuse([Problem("email", 'must be an email address, got "x"')], "line 3, id c2")
    stats.refuse([Problem("email", 'must be an email address, got "y"')], "line 9, id c8")
    assert (stats.requests, stats.throttled, stats.retries) == (1, 1, 1)
    assert stats.timeline.requests == [1] and stats.timeline.throttled == [1]
    assert stats.reason_examples == {
        "email: must be an email address": 'line 3, id c2: email: must be an email address, '
                                           'got "x"'}
