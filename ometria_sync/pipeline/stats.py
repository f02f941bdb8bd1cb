"""Counters for one stream's run: what the end-of-run summary and the report are made of."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import msgspec

from ometria_sync.pipeline.timeline import Timeline
from ometria_sync.schemas import Problem
from ometria_sync.sources import Position

#: refusal reasons that keep an example (the first seen of each)
MAX_EXAMPLES = 50

_INDEX = re.compile(r"\[\d+\]")
_VALUE = re.compile(r",? got .*$", re.S)

#: records named per warning reason in the run report
WARNING_SAMPLES_PER_REASON = 5


class WarningSample(msgspec.Struct, omit_defaults=True):
    """One record a warning was given for: where it is (the source part, its line or its
    position: a cursor, a page), its id, the field and the full reason."""

    source: str
    path: str
    reason: str
    line: int | None = None
    #: a Position; typed Any because msgspec cannot decode that recursive alias, and run
    #: reports (which hold these samples) are decoded again by ``history`` and ``health``
    position: Any = None
    id: str | None = None


def reason_key(problem: Problem) -> str:
    """Group problems by rule: ``lineitems[2].discount: must be <= 0, got 5.0`` ->
    ``lineitems[].discount: must be <= 0``."""
    path = _INDEX.sub("[]", problem.path)
    message = _VALUE.sub("", problem.message)
    return f"{path}: {message}" if path else message


class StreamStats(msgspec.Struct):
    """Counts for one stream. ``unchanged`` valid records were skipped by change detection;
    ``sent`` records went out in 2xx-answered requests; Ometria counted ``accepted`` +
    ``rejected`` of them, and answered the rest ``skipped`` (undocumented): ``unconfirmed``,
    never counted as delivered."""

    stream: str
    read: int = 0
    valid: int = 0
    unchanged: int = 0
    #: skipped by the stream's transform (it returned None): neither sent nor dead-lettered
    filtered: int = 0
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    unconfirmed: int = 0
    dead_lettered: int = 0
    requests: int = 0
    throttled: int = 0
    retries: int = 0
    warnings: int = 0
    statuses: dict[str, int] = msgspec.field(default_factory=dict)
    #: problems by reason (``reason_key``), and the records refused for each reason
    reasons: dict[str, int] = msgspec.field(default_factory=dict)
    reason_records: dict[str, int] = msgspec.field(default_factory=dict)
    warning_reasons: dict[str, int] = msgspec.field(default_factory=dict)
    #: per warning reason, the first WARNING_SAMPLES_PER_REASON records it was given for
    warning_samples: dict[str, list[WarningSample]] = msgspec.field(default_factory=dict)
    duration: float = 0.0
    outcome: str = "pending"
    error: str | None = None
    #: the checkpoint position: how far the stream is settled (None: nothing yet)
    position: Position | None = None
    #: where the run started reading (the resumed checkpoint; None and ``started_from_top``
    #: when it read from the top), so ``verify --last-run`` checks what this run covered
    start_position: Position | None = None
    started_from_top: bool | None = None
    #: monotonic times the first and the latest request left (for the achieved rate)
    first_request_at: float | None = None
    last_request_at: float | None = None
    #: bytes of the current file part and how far the reader got (for progress estimates)
    bytes_total: int | None = None
    bytes_read: int = 0
    records_at_bytes_read: int = 0
    #: the pacer's slack over each window of n requests (seconds): in force at the last
    #: answer, and the widest so far (None before the first answer)
    slack: float | None = None
    slack_max: float | None = None
    #: requests, 429s and retries per second of the run (bounded: ``timeline.py``)
    timeline: Timeline = msgspec.field(default_factory=Timeline)
    #: the first record refused for each reason (of the first MAX_EXAMPLES reasons): where it
    #: was and the problem as found, e.g. ``line 12, id c5: email: must be ..., got "x"``
    reason_examples: dict[str, str] = msgspec.field(default_factory=dict)
    #: refusals this run found new (a key not in the ledger, or new content), and refusals of
    #: the same content an earlier run refused (known: ``pipeline/ledger.py``), the earliest of
    #: those first refused; records that left the ledger (acknowledged at last)
    refused_new: int = 0
    refused_known: int = 0
    refused_known_since: str | None = None
    ledger_left: int = 0
    #: records noted undelivered (to be resent by the next run), records resent from the
    #: ledger, and records parked (``max_attempts`` runs without an acknowledgement)
    undelivered: int = 0
    resent: int = 0
    parked: int = 0
    #: of the resent, those read again from the source by id (its current version)
    reread: int = 0
    #: ``on_missing = "deactivate"``: ids delivered before that this complete read did not see,
    #: the deactivations sent for them, and ids deactivated before that came back
    missing: int = 0
    deactivated: int = 0
    reactivated: int = 0

    def count_status(self, status: int | str) -> None:
        key = str(status)
        self.statuses[key] = self.statuses.get(key, 0) + 1

    def refuse(self, problems: list[Problem], where: str | None = None) -> None:
        """One refused record's problems: each counted, the record once per reason, and the
        first record of each reason kept as its example (``where`` names it)."""
        keys = [reason_key(problem) for problem in problems]
        for key in keys:
            self.reasons[key] = self.reasons.get(key, 0) + 1
        for key, problem in zip(keys, problems, strict=True):
            if key not in self.reason_examples and len(self.reason_examples) < MAX_EXAMPLES:
                self.reason_examples[key] = f"{where}: {problem}" if where else str(problem)
        for key in dict.fromkeys(keys):
            self.reason_records[key] = self.reason_records.get(key, 0) + 1

    def count_throttled(self, now: float) -> None:
        """A 429 answer at monotonic time ``now`` (its retry is counted by ``count_retry``)."""
        self.throttled += 1
        self.timeline.note("throttled", now)

    def count_retry(self, now: float) -> None:
        self.retries += 1
        self.timeline.note("retries", now)

    def warn(self, problem: Problem, sample: WarningSample | None = None) -> None:
        """Count a warning; ``sample`` names its record (kept for the first few per reason)."""
        self.warnings += 1
        key = reason_key(problem)
        self.warning_reasons[key] = self.warning_reasons.get(key, 0) + 1
        if sample is not None:
            samples = self.warning_samples.setdefault(key, [])
            if len(samples) < WARNING_SAMPLES_PER_REASON:
                samples.append(sample)

    def consumed(self, position: Position | None, records: int) -> None:
        """The batcher got ``records`` records, up to ``position``, into a sized file."""
        if self.bytes_total and isinstance(position, (tuple, list)) and position:
            offset = position[0]
            if isinstance(offset, int):
                self.bytes_read = offset
                self.records_at_bytes_read = records

    def estimated_total(self) -> int | None:
        """Records in the input, extrapolated from the bytes consumed so far."""
        if not self.bytes_total or not self.bytes_read:
            return None
        return round(self.records_at_bytes_read * self.bytes_total / self.bytes_read)

    def note_slack(self, slack: float, largest: float) -> None:
        self.slack = slack
        self.slack_max = largest

    def request_sent(self, now: float) -> None:
        self.requests += 1
        self.timeline.note("requests", now)
        if self.first_request_at is None:
            self.first_request_at = now
        self.last_request_at = now

    @property
    def requests_per_second(self) -> float | None:
        """Requests per second between the first and the last departure (None under two)."""
        if self.requests < 2 or self.first_request_at is None or self.last_request_at is None:
            return None
        span = self.last_request_at - self.first_request_at
        return (self.requests - 1) / span if span > 0 else None

    @property
    def records_per_second(self) -> float:
        return self.sent / self.duration if self.duration > 0 else 0.0

    def top_reasons(self, n: int = 5) -> list[tuple[str, int, int]]:
        """The ``n`` reasons most records were refused for: (reason, records, problems)."""
        by_records = Counter(self.reason_records or self.reasons).most_common(n)
        return [(key, records, self.reasons.get(key, records)) for key, records in by_records]
