"""What ``verify`` reports: per stream counts, and the ids that are not verified (at most
``LISTED``: memory stays flat whatever the sources' size)."""

from __future__ import annotations

from typing import Literal

import msgspec

from ometria_sync.verify.check import Finding, Method

NOT_VERIFIED = ("different", "missing", "in_errors")
#: ids that are not verified listed in the report (all are counted)
LISTED = 1000


class VerifyOptions(msgspec.Struct, frozen=True, kw_only=True):
    streams: list[str] | None = None
    #: a uniform sample of this many records per stream (None: all)
    sample: int | None = None
    #: the sample's seed (None: drawn, and reported)
    seed: int | None = None
    last_run: bool = False
    method: Method = "auto"
    repair: bool = False
    repair_rounds: int = 3
    #: seconds to let Ometria import a repair before it is verified again
    settle: float = 10.0


class StreamSummary(msgspec.Struct):
    """One stream's ids: those whose latest version it holds (an id a later stream of the
    same type also holds is counted there, judged against that stream's version)."""

    stream: str
    record_type: str
    method: str
    checked: int
    verified: int = 0
    different: int = 0
    missing: int = 0
    in_errors: int = 0
    not_verifiable: int = 0
    #: records the batcher would refuse (never sent, so not looked up)
    invalid: int = 0
    #: records resent by ``--repair``
    repaired: int = 0
    requests: int = 0


class VerifyReport(msgspec.Struct):
    job: str
    started_at: str
    selection: Literal["all", "sample", "last_run"]
    seed: int | None
    rate_limit: float
    streams: list[StreamSummary]
    #: the ids that are not verified, at most ``LISTED`` (``records_not_listed`` more)
    records: list[Finding]
    requests: int = 0
    exit_code: int = 0
    error: str | None = None
    records_not_listed: int = 0
    #: this verify's id (its findings in the ledger and ``verify-log.jsonl`` carry it)
    verify_id: str = ""
    #: ledger rows written (found not in Ometria: the next run resends them first), and rows
    #: that left the ledger (found in Ometria)
    ledger_noted: int = 0
    ledger_left: int = 0


def outcome_rows(records: list[Finding], limit: int) -> list[list[str]]:
    """Table rows for the records that are not verified (at most ``limit``)."""
    rows = []
    for outcome in records:
        if outcome.status == "verified":
            continue
        if outcome.status == "not_verifiable":
            detail = f"no read endpoint for {outcome.record_type} records"
        elif outcome.differences:
            detail = "; ".join(d.describe() for d in outcome.differences[:3])
            if len(outcome.differences) > 3:
                detail += f"; ... {len(outcome.differences) - 3} more"
        elif outcome.error:
            detail = f"{outcome.error.get('error_path', '')}: {outcome.error.get('error_message')}"
        else:
            detail = "not found in Ometria"
        rows.append([outcome.status, outcome.stream, outcome.id, outcome.source, detail])
        if len(rows) >= limit:
            break
    return rows


def report_json(report: VerifyReport) -> bytes:
    return msgspec.json.encode(report)
