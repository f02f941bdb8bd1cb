"""A run's id sorts in start order, so the report files it names do: ``verify --last-run``
takes the last two sending runs in that order."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from ometria_sync.pipeline.job_io import new_run_id
from ometria_sync.verify.select import last_run_window

SECOND = dt.datetime(2026, 11, 30, 2, 0, 7, tzinfo=dt.UTC)


def test_two_runs_in_one_second_sort_in_start_order() -> None:
    """A random suffix never decides the order (200 draws: the old whole-second ids sorted
    the wrong way about half the time)."""
    for _ in range(200):
        first = new_run_id(SECOND.replace(microsecond=998_000))
        second = new_run_id(SECOND.replace(microsecond=999_000))
        assert first < second


def test_ids_name_the_start_in_utc_to_the_millisecond() -> None:
    local = SECOND.replace(microsecond=123_456).astimezone(dt.timezone(dt.timedelta(hours=2)))
    run_id = new_run_id(local)
    assert run_id.startswith("20261130T020007.123Z-")
    assert len(run_id.split("-")[1]) == 6


def test_last_run_of_two_in_one_second_is_the_later_one(tmp_path: Path) -> None:
    for _ in range(20):  # fresh random suffixes each time
        for old in tmp_path.glob("*.json"):
            old.unlink()
        for micros, start, position in ((100_000, None, [60, 2]), (900_000, [60, 2], [120, 4])):
            run_id = new_run_id(SECOND.replace(microsecond=micros))
            (tmp_path / f"{run_id}.json").write_text(json.dumps({
                "run_id": run_id, "started_at": SECOND.isoformat(), "dry_run": False,
                "streams": [{"stream": "contacts", "checkpoint_position": position,
                             "start_position": start, "started_from_top": start is None}]}))
        window = last_run_window(str(tmp_path), "contacts")
        assert window is not None
        assert (window.start, window.end) == ([60, 2], [120, 4])
