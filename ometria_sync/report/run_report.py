"""The run report: one JSON file per run, ``state/reports/<run-id>.json``.

It holds, per stream, the counts, requests by status, retries, 429s, duration, the rate achieved
against the limit, the pacer's slack for jitter (in force and widest), a timeline of requests,
429s and retries per second (bounded: ``pipeline/timeline.py``), the dead-letter path, where the
run started reading and the checkpoint position, why records were refused (records and problems
per reason, and an example of each reason), the ledger's counts (refusals new and known,
undelivered, resent, parked), the warnings per reason with the first records each was given for
(the file and line or the position, and the id); and, when Ometria rejected records, its own
error list (``GET /v2/push/_errors``) grouped by path and message. The file is created readable
by its owner only, and never contains the API key.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec

from ometria_sync.pacing import BudgetStats
from ometria_sync.pipeline import StreamStats, WarningSample


class StreamReport(msgspec.Struct):
    stream: str
    outcome: str
    read: int
    valid: int
    unchanged: int
    sent: int
    accepted: int
    rejected: int
    dead_lettered: int
    warnings: int
    requests: int
    requests_by_status: dict[str, int]
    retries: int
    throttled: int
    duration_seconds: float
    records_per_second: float
    #: between the first and the last request; None for fewer than two requests
    requests_per_second: float | None
    rate_limit: float
    rate_achieved_fraction: float | None
    checkpoint_position: Any
    refused_reasons: dict[str, int]
    error: str | None
    #: the pacer's slack over each window of n requests beyond 1 s (seconds), kept for jitter
    #: between its clock and Ometria's: at the end, and the widest in force
    pacing_slack_seconds: float | None = None
    pacing_slack_seconds_max: float | None = None
    #: answered ``skipped`` by Ometria (meaning undocumented): not counted as delivered
    unconfirmed: int = 0
    #: skipped by the stream's transform (it returned None)
    filtered: int = 0
    #: records refused per reason (``refused_reasons`` counts problems: a record may have
    #: several of one reason, one per line item)
    refused_records: dict[str, int] = msgspec.field(default_factory=dict)
    #: warnings per reason, and the first records each was given for (stream, file and line
    #: or position, id); ``warnings.jsonl`` beside the dead letter lists more
    warning_reasons: dict[str, int] = msgspec.field(default_factory=dict)
    warning_samples: dict[str, list[WarningSample]] = msgspec.field(default_factory=dict)
    #: where this run started reading (the checkpoint it resumed from; null with
    #: ``started_from_top`` when it read from the top): ``verify --last-run`` checks from here
    start_position: Any = None
    started_from_top: bool | None = None
    #: refusals this run found new, and those an earlier run refused with the same content
    #: (known, since ``refused_known_since``); records that left the ledger (acknowledged)
    refused_new: int = 0
    refused_known: int = 0
    refused_known_since: str | None = None
    ledger_left: int = 0
    #: records noted undelivered (the next run resends them), resent from the ledger, parked
    undelivered: int = 0
    resent: int = 0
    parked: int = 0
    #: of the resent, those read again from the source by id (its current version)
    reread: int = 0
    #: ``on_missing = "deactivate"``: ids delivered before that the complete read did not see,
    #: the deactivations sent for them (not counted in ``read``), and ids deactivated before
    #: that came back and went out active
    missing: int = 0
    deactivated: int = 0
    reactivated: int = 0
    #: the first record refused for each reason: where it was, and the problem as found
    refused_examples: dict[str, str] = msgspec.field(default_factory=dict)
    #: requests, 429s and retries per bucket of the run (None: no request)
    timeline: TimelineReport | None = None


class TimelineReport(msgspec.Struct):
    """Requests, 429s and retries per ``bucket_seconds`` from ``started_at`` (the first
    request's time, ISO 8601 UTC); at most 3600 buckets (they widen on long runs)."""

    started_at: str
    bucket_seconds: int
    requests: list[int]
    throttled: list[int]
    retries: list[int]


class ErrorGroup(msgspec.Struct):
    """Ometria's asynchronous validation errors, grouped."""

    error_path: str
    error_message: str
    count: int


class SharedBudgetReport(msgspec.Struct):
    """The rate budget shared through Redis: how many processes shared it (the most at once)
    and what this process got. ``url`` has its password redacted."""

    url: str
    max_processes: int
    requests: int
    requests_per_second: float | None
    rate_limit: float
    share_of_limit: float | None
    redis_round_trips_per_request: float | None
    redis_ms_per_request: float | None
    #: milliseconds from asking Redis to the slot granted (this process's turn), p50/p99
    wait_for_slot_ms_p50: float | None
    wait_for_slot_ms_p99: float | None
    #: milliseconds from the slot to the departure Redis confirmed, p50/p99
    late_after_slot_ms_p50: float | None
    late_after_slot_ms_p99: float | None


def shared_budget_report(budget: BudgetStats, rate_limit: float) -> SharedBudgetReport:
    rps = budget.requests_per_second
    per = budget.requests or None
    return SharedBudgetReport(
        url=budget.url, max_processes=budget.max_processes, requests=budget.requests,
        requests_per_second=round(rps, 3) if rps is not None else None, rate_limit=rate_limit,
        share_of_limit=round(rps / rate_limit, 4) if rps is not None else None,
        redis_round_trips_per_request=round(budget.round_trips / per, 3) if per else None,
        redis_ms_per_request=round(budget.redis_seconds * 1000 / per, 3) if per else None,
        wait_for_slot_ms_p50=budget.percentile_ms("waits", 0.5),
        wait_for_slot_ms_p99=budget.percentile_ms("waits", 0.99),
        late_after_slot_ms_p50=budget.percentile_ms("lateness", 0.5),
        late_after_slot_ms_p99=budget.percentile_ms("lateness", 0.99),
    )


class RunReport(msgspec.Struct):
    run_id: str
    job: str
    started_at: str
    finished_at: str
    exit_code: int
    dry_run: bool
    dead_letter_path: str
    streams: list[StreamReport]
    ometria_errors: list[ErrorGroup] = msgspec.field(default_factory=list)
    error: str | None = None
    shared_budget: SharedBudgetReport | None = None


def stream_report(stats: StreamStats, rate_limit: float) -> StreamReport:
    rps = stats.requests_per_second
    return StreamReport(
        stream=stats.stream, outcome=stats.outcome, read=stats.read, valid=stats.valid,
        unchanged=stats.unchanged, sent=stats.sent, accepted=stats.accepted,
        rejected=stats.rejected, dead_lettered=stats.dead_lettered, warnings=stats.warnings,
        unconfirmed=stats.unconfirmed, filtered=stats.filtered,
        refused_records=dict(stats.reason_records), warning_reasons=dict(stats.warning_reasons),
        warning_samples={k: list(v) for k, v in stats.warning_samples.items()},
        requests=stats.requests, requests_by_status=dict(stats.statuses), retries=stats.retries,
        throttled=stats.throttled, duration_seconds=round(stats.duration, 3),
        records_per_second=round(stats.records_per_second, 1),
        requests_per_second=round(rps, 3) if rps is not None else None, rate_limit=rate_limit,
        rate_achieved_fraction=round(rps / rate_limit, 4) if rps is not None else None,
        checkpoint_position=stats.position, refused_reasons=dict(stats.reasons),
        error=stats.error,
        pacing_slack_seconds=round(stats.slack, 4) if stats.slack is not None else None,
        pacing_slack_seconds_max=(round(stats.slack_max, 4) if stats.slack_max is not None
                                  else None),
        start_position=stats.start_position, started_from_top=stats.started_from_top,
        refused_new=stats.refused_new, refused_known=stats.refused_known,
        refused_known_since=stats.refused_known_since, ledger_left=stats.ledger_left,
        undelivered=stats.undelivered, resent=stats.resent, parked=stats.parked,
        reread=stats.reread, refused_examples=dict(stats.reason_examples),
        missing=stats.missing, deactivated=stats.deactivated, reactivated=stats.reactivated,
        timeline=_timeline(stats),
    )


def _timeline(stats: StreamStats) -> TimelineReport | None:
    line = stats.timeline
    if line.started_at is None:
        return None
    started = dt.datetime.fromtimestamp(line.started_at, dt.UTC)
    return TimelineReport(
        started_at=started.isoformat(timespec="milliseconds"),
        bucket_seconds=line.bucket_seconds, requests=list(line.requests),
        throttled=list(line.throttled), retries=list(line.retries))


def group_ometria_errors(errors: Any) -> list[ErrorGroup]:
    """Group ``/push/_errors`` objects by (path, message); tolerant of unknown shapes."""
    if not isinstance(errors, list):
        return []
    counts: Counter[tuple[str, str]] = Counter()
    for item in errors:
        if isinstance(item, dict):
            counts[(str(item.get("error_path", "")), str(item.get("error_message", "")))] += 1
    return [ErrorGroup(path, message, n) for (path, message), n in counts.most_common()]


def write_report(report: RunReport, folder: str | Path) -> Path:
    """Write ``<folder>/<run-id>.json`` (mode 0600) and return its path."""
    path = Path(folder) / f"{report.run_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n")
    return path
