"""The run report, the metrics textfile, JSON progress lines, and Ometria's error list."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aioresponses import CallbackResult, aioresponses
from structlog.testing import capture_logs

from ometria_sync.cli.common import print_summary
from ometria_sync.cli.report import finish_report
from ometria_sync.config import Job
from ometria_sync.pacing.budget_stats import BudgetStats
from ometria_sync.pipeline.job_run import RunOptions, run_job
from ometria_sync.pipeline.stats import StreamStats
from ometria_sync.report.progress import ProgressReporter
from ometria_sync.report.run_report import group_ometria_errors
from tests.fakes import FakeOmetria, contacts, minimal_validator, write_jsonl
from tests.manual_clock import ManualClock, until

MakeJob = Callable[..., Job]


async def test_report_file_holds_the_counts_and_is_private(
    make_job: MakeJob, tmp_path: Path
) -> None:
    write_jsonl(tmp_path / "data/contacts.jsonl", [*contacts(250), "{oops"])
    job = make_job(extra='[report]\nmetrics_textfile = "state/metrics/sync.prom"\n')
    result = await run_job(job, RunOptions(progress="off"),
                           pusher_factory=lambda s: FakeOmetria(),
                           validator_factory=minimal_validator, handle_signals=False)
    path = Path(finish_report(job, result, dry_run=False))
    assert path.parent == tmp_path / "state" / "reports"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    report = json.loads(path.read_text())
    (stream,) = report["streams"]
    assert report["exit_code"] == 3 and report["run_id"] == result.run_id
    assert (stream["read"], stream["sent"], stream["dead_lettered"], stream["requests"]) == (
        251, 250, 1, 3)
    assert stream["requests_by_status"] == {"202": 3}
    assert stream["checkpoint_position"][1] == 251
    assert stream["rate_achieved_fraction"] is not None
    # the pacer's slack for jitter: at least the 20 ms floor, in force and widest
    assert stream["pacing_slack_seconds"] >= 0.020
    assert stream["pacing_slack_seconds_max"] >= stream["pacing_slack_seconds"]
    metrics = (tmp_path / "state/metrics/sync.prom").read_text()
    assert re.search(r'ometria_sync_records_total\{job="job",kind="sent",stream="contacts"\} 250',
                     metrics)
    assert 'ometria_sync_requests_total{job="job",status="202",stream="contacts"} 3.0' in metrics
    assert 'ometria_sync_last_run_exit_code{job="job"} 3.0' in metrics


def test_the_summary_shows_the_pacing_slack() -> None:
    stats = StreamStats("contacts", requests=3)
    stats.note_slack(0.0275, 0.0525)
    out = io.StringIO()
    print_summary([stats], out)
    assert "contacts: pacing slack 28 ms per window of requests (widest 52 ms)" in out.getvalue()


def test_ometria_errors_are_grouped_by_path_and_message() -> None:
    errors = [{"error_message": "not a valid value", "error_path": "root > email"},
              {"error_message": "not a valid value", "error_path": "root > email"},
              {"error_message": "not a valid value", "error_path": "root > lastname"},
              "garbage"]
    groups = group_ometria_errors(errors)
    assert [(g.error_path, g.count) for g in groups] == [("root > email", 2),
                                                          ("root > lastname", 1)]
    assert group_ometria_errors({"not": "a list"}) == []


def _one_rejected(url: Any, **kwargs: Any) -> CallbackResult:
    """Ometria's answer to a push with one of its records rejected."""
    sent = len(json.loads(kwargs["data"]))
    return CallbackResult(status=202, payload={"status": "OK", "accepted": sent - 1,
                                               "rejected": 1})


async def test_rejected_records_fetch_ometria_errors_once(
    make_job: MakeJob, tmp_path: Path
) -> None:
    """After a run where Ometria answered rejected > 0, GET /v2/push/_errors is fetched once."""
    write_jsonl(tmp_path / "data/contacts.jsonl", contacts(150))
    job = make_job(base_url="https://api.example.test/v2")
    os.environ["OMETRIA_API_KEY"] = "k"
    try:
        with aioresponses() as mock:
            for _ in range(2):
                mock.post("https://api.example.test/v2/push", callback=_one_rejected)
            mock.get("https://api.example.test/v2/push/_errors", payload=[
                {"error_message": "not a valid value", "error_path": "root > email"}])
            result = await run_job(job, RunOptions(progress="off"),
                                   validator_factory=minimal_validator, handle_signals=False)
            gets = [k for k in mock.requests if k[0] == "GET"]
    finally:
        del os.environ["OMETRIA_API_KEY"]
    assert result.exit_code == 3 and result.streams[0].rejected == 2
    assert len(gets) == 1
    assert result.ometria_errors == [{"error_message": "not a valid value",
                                      "error_path": "root > email"}]


async def _progress_lines(reporter: ProgressReporter, clock: ManualClock,
                          *steps: float) -> list[dict[str, Any]]:
    """The `progress` events ``reporter`` logs while ``clock`` moves on by each step."""
    with capture_logs() as logs:
        task = asyncio.create_task(reporter.run())
        try:
            for step in steps:
                await until(lambda: clock.sleeping == 1)
                await clock.advance(step)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return [e for e in logs if e["event"] == "progress"]


async def test_progress_lines_off_a_terminal() -> None:
    """Off a terminal, a JSON `progress` event every interval (none before) with counts, rate
    and an ETA from the records left at the rate observed since the stream was first seen."""
    stats = StreamStats(stream="contacts", read=500, sent=400, requests=4,
                        first_request_at=0.0, last_request_at=1.0,
                        bytes_total=1000, bytes_read=250, records_at_bytes_read=500)
    clock = ManualClock()
    reporter = ProgressReporter({"contacts": stats}, rate_limit=4, batch_size=100, mode="log",
                                interval=10, clock=clock.time, sleep=clock.sleep)
    assert await _progress_lines(reporter, clock, 9.9) == []
    clock = ManualClock()
    reporter = ProgressReporter({"contacts": stats}, rate_limit=4, batch_size=100, mode="log",
                                interval=10, clock=clock.time, sleep=clock.sleep)
    events = await _progress_lines(reporter, clock, 10, 10, 10)
    assert len(events) == 3
    event: dict[str, Any] = events[0]
    assert (event["stream"], event["read"], event["sent"], event["rate_limit"]) == (
        "contacts", 500, 400, 4)
    assert event["requests_per_second"] == 3.0
    assert event["estimated_total"] == 2000
    # first seen at 10 s; at 20 s: 400 settled in 10 s, 1600 left at 40 records/s
    assert events[1]["eta_seconds"] == 40
    # at 30 s: 400 in 20 s, 20 records/s
    assert events[2]["eta_seconds"] == 80


async def test_progress_eta_is_capped_by_the_rate_limit() -> None:
    """Records settled faster than the limit allows (a resumed run's unchanged ones) do not
    make the ETA shorter than sending the rest at the limit would take."""
    stats = StreamStats(stream="contacts", read=500, sent=400, unchanged=3600,
                        bytes_total=1000, bytes_read=500, records_at_bytes_read=5000)
    clock = ManualClock()
    reporter = ProgressReporter({"contacts": stats}, rate_limit=4, batch_size=100, mode="log",
                                interval=1, clock=clock.time, sleep=clock.sleep)
    events = await _progress_lines(reporter, clock, 1, 1)
    # 6000 left; 4000 settled in 1 s is over the cap of 4 x 100 records/s
    assert events[1]["eta_seconds"] == 6000 / 400


async def test_progress_lines_show_the_shared_budget() -> None:
    """With a budget shared through Redis, each progress line says how many processes share it
    and what this one gets; without one, neither key appears."""
    stats = StreamStats(stream="contacts", read=10, sent=10, requests=2,
                        first_request_at=0.0, last_request_at=1.0)
    budget = BudgetStats(url="redis://***@h:6379/0", processes=3, requests=5, first_at=10.0,
                         last_at=13.0)
    lines: dict[str, dict[str, Any]] = {}
    for name, shared in (("shared", budget), ("alone", None)):
        clock = ManualClock()
        reporter = ProgressReporter({"contacts": stats}, rate_limit=4, batch_size=100,
                                    mode="log", interval=10, budget=shared,
                                    clock=clock.time, sleep=clock.sleep)
        (lines[name],) = await _progress_lines(reporter, clock, 10)
    assert lines["shared"]["shared_by_processes"] == 3
    assert lines["shared"]["this_process_requests_per_second"] == round(4 / 3, 2)
    assert "shared_by_processes" not in lines["alone"]


async def test_the_report_says_where_each_stream_started_reading(
    make_job: MakeJob, tmp_path: Path
) -> None:
    """``verify --last-run`` checks from there: the top for a new file, else the checkpoint
    the run resumed from."""
    write_jsonl(tmp_path / "data/contacts.jsonl", contacts(5))
    job = make_job()
    streams = []
    for _ in range(2):  # the second run finds the same file and resumes at its end
        result = await run_job(job, RunOptions(progress="off"),
                               pusher_factory=lambda s: FakeOmetria(),
                               validator_factory=minimal_validator, handle_signals=False)
        path = Path(finish_report(job, result, dry_run=False))
        streams.append(json.loads(path.read_text())["streams"][0])
    first, second = streams
    assert (first["started_from_top"], first["start_position"]) == (True, None)
    assert second["started_from_top"] is False
    assert second["start_position"] == first["checkpoint_position"]
