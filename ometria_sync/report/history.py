"""A run in a line: what ``history`` lists, the HTML report's trend and the health rules read.

A :class:`RunSummary` is cut from a :class:`RunReport` (kept in the state store, and in
``report.folder``): when the run started, how it ended, how long it took, per stream the
records read, sent, refused and unchanged, and the request rate against the limit.
"Refused" counts the records that did not go in: dead-lettered here (invalid, or a batch
Ometria refused) plus those Ometria answered ``rejected``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import msgspec

from ometria_sync.report.run_report import RunReport

OUTCOMES = {0: "ok", 1: "failed", 2: "usage error", 3: "partial", 4: "unverified",
            130: "interrupted"}


class StreamSummary(msgspec.Struct):
    stream: str
    outcome: str
    read: int
    sent: int
    refused: int
    unchanged: int
    #: requests per second against the limit (None: fewer than two requests)
    rate_achieved_fraction: float | None


class RunSummary(msgspec.Struct):
    run_id: str
    started_at: str
    finished_at: str
    outcome: str
    exit_code: int
    dry_run: bool
    duration_seconds: float
    read: int
    sent: int
    refused: int
    unchanged: int
    #: the request rate against the limit, over the streams that sent (requests-weighted)
    rate_achieved_fraction: float | None
    rate_limit: float | None
    streams: list[StreamSummary]


def _seconds(started: str, finished: str) -> float:
    try:
        span = dt.datetime.fromisoformat(finished) - dt.datetime.fromisoformat(started)
    except ValueError:
        return 0.0
    return max(0.0, span.total_seconds())


def summarize(report: RunReport) -> RunSummary:
    streams = [StreamSummary(s.stream, s.outcome, s.read, s.sent,
                             s.dead_lettered + s.rejected, s.unchanged,
                             s.rate_achieved_fraction) for s in report.streams]
    weighted = [(s.rate_achieved_fraction, s.requests) for s in report.streams
                if s.rate_achieved_fraction is not None and s.requests]
    weight = sum(n for _, n in weighted)
    rate = round(sum(f * n for f, n in weighted) / weight, 4) if weight else None
    outcome = "dry run" if report.dry_run and report.exit_code in (0, 3) else OUTCOMES.get(
        report.exit_code, f"exit {report.exit_code}")
    return RunSummary(
        run_id=report.run_id, started_at=report.started_at, finished_at=report.finished_at,
        outcome=outcome, exit_code=report.exit_code, dry_run=report.dry_run,
        # the report's times are to the second: a stream's own duration is finer
        duration_seconds=round(max(_seconds(report.started_at, report.finished_at),
                                   *(s.duration_seconds for s in report.streams), 0.0), 3),
        read=sum(s.read for s in streams), sent=sum(s.sent for s in streams),
        refused=sum(s.refused for s in streams),
        unchanged=sum(s.unchanged for s in streams), rate_achieved_fraction=rate,
        rate_limit=max((s.rate_limit for s in report.streams), default=None),
        streams=streams)


def decode_reports(blobs: Iterable[bytes]) -> list[RunReport]:
    """Run reports from their JSON, oldest first; one that does not decode (written by a
    newer version, say) is left out rather than failing the list."""
    reports = []
    for blob in blobs:
        try:
            reports.append(msgspec.json.decode(blob, type=RunReport))
        except msgspec.ValidationError:
            continue
    return sorted(reports, key=lambda r: (r.started_at, r.run_id))


def history_rows(summaries: list[RunSummary]) -> list[list[str]]:
    """The ``history`` table: one row per stream of each run, newest run first."""
    rows = []
    for run in reversed(summaries):
        rate = (f"{run.rate_achieved_fraction:.0%} of {run.rate_limit:g}/s"
                if run.rate_achieved_fraction is not None and run.rate_limit else "-")
        for n, s in enumerate(run.streams or [StreamSummary("-", "-", 0, 0, 0, 0, None)]):
            head = [run.started_at, run.outcome, str(run.exit_code),
                    f"{run.duration_seconds:.1f}", rate] if n == 0 else [""] * 5
            rows.append([*head, s.stream, str(s.read), str(s.sent), str(s.refused),
                         str(s.unchanged)])
    return rows


HISTORY_HEADERS = ["started", "outcome", "exit", "seconds", "rate", "stream", "read", "sent",
                   "refused", "unchanged"]
