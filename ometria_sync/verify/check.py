"""Looking records up in Ometria and sorting them: verified, different, missing, listed in
``/push/_errors``, not verifiable.

Two ways to look up: ``single`` (one request per record: ``GET /orders/{id}``,
``GET /profiles?email=``, ``GET /products/{id}``) and ``list`` (``GET /orders`` or
``GET /profiles``, 250 a page, matched page by page in the ledger: ``check_stream`` in ``run.py``).
``auto`` takes the list when its pages (estimated from how many distinct records the job's
streams of that type hold) cost fewer requests than the look-ups. Look-ups run ``workers`` at
a time, each through the pacer. Custom events have no read endpoint: nothing is requested for
them.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable
from typing import Any, Literal

import msgspec

from ometria_sync.verify.compare import VERIFIABLE, Difference, compare_record
from ometria_sync.verify.reader import PAGE, Reader
from ometria_sync.verify.select import Target

Method = Literal["auto", "list", "single"]
Status = Literal["verified", "different", "missing", "in_errors", "not_verifiable"]


class Finding(msgspec.Struct):
    """What verify found for one record; ``error`` is Ometria's ``/push/_errors`` object."""

    stream: str
    record_type: str
    id: str
    status: Status
    source: str
    position: Any = None
    differences: list[Difference] = msgspec.field(default_factory=list)
    error: dict[str, Any] | None = None


class Plan(msgspec.Struct):
    """How a stream will be checked and what it costs."""

    stream: str
    record_type: str
    records: int
    method: str
    requests: int
    single_requests: int
    list_requests: int | None
    #: at most this many look-ups more: contacts an ``updateSince`` listing may not show
    fallback: int = 0


def plan(stream: str, record_type: str, records: int, held: int, method: Method, *,
         without_email: int = 0, update_since: str | None = None) -> Plan:
    """Choose the cheaper way (or the one asked for) and count its requests: ``records`` ids
    to check, ``held`` distinct ids the job's streams of that type hold (what the list pages
    walk), ``without_email`` contacts that cannot be looked up one by one. Custom events
    have no read endpoint: method ``none``, 0 requests, and none are sent."""
    n = records
    if record_type not in VERIFIABLE:
        return Plan(stream, record_type, n, "none", 0, 0, None)
    pages = max(held, n) // PAGE + 1 if n else 0  # the last page is a short one
    if record_type == "product":
        return Plan(stream, record_type, n, "single", n, n, None)
    if record_type == "contact" and update_since is not None:
        pages = n // PAGE + 1 if n else 0
    single_possible = record_type != "contact" or without_email == 0
    chosen = method
    if method == "auto" or (method == "single" and not single_possible):
        chosen = "single" if single_possible and n <= pages else "list"
    fallback = n if chosen == "list" and record_type == "contact" and update_since else 0
    return Plan(stream, record_type, n, chosen, n if chosen == "single" else pages,
                n if single_possible else 0, pages, fallback)


def error_fingerprint(error: Any) -> str:
    """What tells one ``/push/_errors`` object from another across fetches (its canonical
    JSON, hashed): ``errors`` compares the list with the one the last clean verify saw."""
    encoded = msgspec.json.encode(error, order="sorted")
    return hashlib.sha256(encoded).hexdigest()[:16]


def errors_by_record(errors: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """``/push/_errors`` objects that name a record (type and id), newest first wins."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for item in errors if isinstance(errors, list) else []:
        if isinstance(item, dict) and item.get("record_id") is not None:
            key = (str(item.get("record_type") or ""), str(item["record_id"]))
            found.setdefault(key, item)
    return found


async def look_up(reader: Reader, record_type: str, targets: list[Target], *,
                  workers: int) -> dict[str, dict[str, Any] | None]:
    """Target key -> what Ometria stores for it (None: not found), one request per target,
    ``workers`` at a time (list pages: ``listing.py``)."""
    found: dict[str, dict[str, Any] | None] = {}
    queue: asyncio.Queue[Target] = asyncio.Queue()
    for target in targets:
        queue.put_nowait(target)

    async def work() -> None:
        while not queue.empty():
            target = queue.get_nowait()
            found[target.key] = await _single(reader, record_type, target)

    await asyncio.gather(*(work() for _ in range(max(1, min(workers, len(targets))))))
    return found


async def _single(reader: Reader, record_type: str, target: Target) -> dict[str, Any] | None:
    if record_type == "contact":
        answer = await reader.get("/profiles", {"email": str(target.record["email"])})
    else:
        answer = await reader.get(f"/{record_type}s/{target.id}")
    return answer if isinstance(answer, dict) else None


def classify(stream: str, record_type: str, targets: Iterable[Target],
             stored: dict[str, dict[str, Any] | None],
             errors: dict[tuple[str, str], dict[str, Any]]) -> list[Finding]:
    """One outcome per target, from what the look-up found."""
    return [judge(stream, record_type, t, stored.get(t.key), errors) for t in targets]


def judge(stream: str, record_type: str, target: Target, found: dict[str, Any] | None,
          errors: dict[tuple[str, str], dict[str, Any]]) -> Finding:
    """The outcome of one target, from what Ometria showed for it (None: nothing)."""
    outcome = Finding(stream, record_type, target.id, "verified", target.source,
                      target.position)
    if record_type not in VERIFIABLE:
        outcome.status = "not_verifiable"
        return outcome
    error = errors.get((record_type, target.id))
    if found is None:
        outcome.status = "in_errors" if error else "missing"
    else:
        outcome.differences = compare_record(record_type, target.record, found)
        if outcome.differences:
            outcome.status = "different"
    if outcome.status != "verified":
        outcome.error = error
    return outcome
