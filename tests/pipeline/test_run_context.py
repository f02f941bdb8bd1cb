"""What the streams of one run share: the first fatal error, live counters, version orders."""

from __future__ import annotations

from ometria_sync.errors import StateError
from ometria_sync.pipeline.stats import StreamStats
from ometria_sync.pipeline.stream_run import SharedRun


def test_the_first_failure_is_the_runs_error() -> None:
    shared = SharedRun()
    assert not shared.failed and shared.error is None
    shared.fail(StateError("disk full"))
    shared.fail(StateError("later"))
    assert shared.failed and shared.error == "disk full"


def test_streams_of_one_record_type_share_one_version_order() -> None:
    shared = SharedRun()
    assert shared.version_order("contact") is shared.version_order("contact")
    assert shared.version_order("contact") is not shared.version_order("order")


def test_tracked_counters_are_the_live_ones() -> None:
    """The progress display reads the stream's own counters, updated in place."""
    shared = SharedRun()
    stats = StreamStats(stream="contacts")
    shared.track(stats)
    stats.read = 5
    assert shared.live["contacts"].read == 5
