"""What the emulator holds: imported records, the import queue, the error list and the stats.

Import is asynchronous, as in Ometria: accepted records wait in a queue of bounded capacity and
a drain task validates and merges them at ``drain_per_second``. Records are keyed by type and id
(contacts by collection and id). A partial record merges field by field into the stored one, as
``@merge: true`` tells Ometria to (fields not sent are kept; without ``@merge`` Ometria "may or
may not" keep them: the emulator keeps them too); a JSON null deletes the field (top-level
fields; nested objects, e.g. a product's ``attributes``, are replaced whole). The control keys
are applied, never stored: ``@add_to_lists`` and ``@remove_from_lists`` change the contact's
``lists`` (list ids, sorted), ``@merge`` and ``@force_optin`` only say how to import. So
``is_active``, ``is_valid`` and ``marketing_optin`` sent alone change only themselves and
read back as sent.

Import can be told to fail the way Ometria's does (``import_failure_rate``): a record accepted
with 2xx is then lost at import, either listed in ``/push/_errors`` with an error object of
Ometria's shape, or (``silent_share`` of the failures) without any trace. ``lost`` keeps what was
lost, for tests. ``import_failure_rate`` and ``failing_ids`` (pushes holding one of those ids
are answered 503: a batch whose retries run out) are attributes a test may change between two
nights, with the emulator still running.

Imported records are kept encoded (bytes): a store of millions of dicts gave the garbage
collector so much to walk that the emulator stalled for tens of milliseconds, stamped the
arrivals queued meanwhile all at once, and answered 429 to a client that had kept the limit.

The stats count arrivals in a sliding one-second window (``SlidingWindow``), as a strict rate
limiter counts them.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter, deque
from collections.abc import ItemsView, Mapping
from pathlib import Path
from typing import Any

import msgspec

from ometria_sync.schemas import MAX_RECORD_BYTES, Problem, validate_record


class SlidingWindow:
    """Counts events in the last ``span`` seconds. ``peak`` is the most ever seen in one span
    (the maximum over all windows is reached at some arrival, so checking at arrivals suffices)."""

    def __init__(self, span: float = 1.0) -> None:
        self.span = span
        self._times: deque[float] = deque()
        self.peak = 0

    def add(self, now: float) -> int:
        """Record an event at ``now``; return how many fall in the window ending at ``now``."""
        times = self._times
        while times and times[0] <= now - self.span:
            times.popleft()
        times.append(now)
        self.peak = max(self.peak, len(times))
        return len(times)

    def count(self, now: float) -> int:
        return sum(1 for t in self._times if t > now - self.span)


_ERRORS_KEPT = 100
#: what ``/push/_errors`` says about a record that was valid but failed at import
IMPORT_FAILED = "Record could not be imported"


def record_key(record: dict[str, Any]) -> tuple[str, str]:
    rtype = str(record.get("@type"))
    if rtype == "contact":
        return rtype, f"{record.get('@collection') or 'default'}/{record.get('id')}"
    return rtype, str(record.get("id"))


#: how to import a record, not what it holds
_CONTROL = frozenset({"@merge", "@force_optin", "@add_to_lists", "@remove_from_lists"})


def merge(stored: dict[str, Any] | None, incoming: dict[str, Any]) -> dict[str, Any]:
    result = dict(stored or {})
    for field, value in incoming.items():
        if field in _CONTROL:
            continue
        if value is None:
            result.pop(field, None)
        else:
            result[field] = value
    added, removed = incoming.get("@add_to_lists"), incoming.get("@remove_from_lists")
    if isinstance(added, list) or isinstance(removed, list):
        lists = {str(x) for x in result.get("lists") or []}
        lists |= {str(x) for x in added or []}
        lists -= {str(x) for x in removed or []}
        result["lists"] = sorted(lists)
    return result


#: rules the client refuses by but Ometria's documents do not say its import enforces (the
#: reference: a contact's ``country_id`` format is documented, its validation unconfirmed): the
#: emulator keeps such records, as it did when the client only warned
_CLIENT_ONLY = frozenset({("contact", "country_id")})


def _validate(record: dict[str, Any]) -> list[Problem]:
    """The project's own schemas, as Ometria's asynchronous import would judge the record
    (without the client's own stricter rules, ``_CLIENT_ONLY``)."""
    rtype = str(record.get("@type"))
    return [p for p in validate_record(rtype, record).errors
            if (rtype, p.path) not in _CLIENT_ONLY]


class Stats:
    """Counters for ``GET /_emulator/stats``: what tests and benchmarks assert on."""

    def __init__(self) -> None:
        self.by_status: Counter[str] = Counter()
        self.arrivals = SlidingWindow()
        self.answered_2xx = SlidingWindow()
        self.first_push: float | None = None
        self.last_push: float | None = None
        self.accepted = 0
        self.rejected = 0
        self.imported = 0
        self.import_errors = 0
        self.import_failures = 0
        self.import_failures_silent = 0
        self.seen: Counter[str] = Counter()

    def snapshot(self, queue_depth: int) -> dict[str, Any]:
        return {
            "requests_by_status": dict(self.by_status),
            "requests": sum(self.by_status.values()),
            "max_requests_in_any_second": self.arrivals.peak,
            "max_2xx_in_any_second": self.answered_2xx.peak,
            "first_request_at": self.first_push,
            "last_request_at": self.last_push,
            "records_accepted": self.accepted,
            "records_rejected": self.rejected,
            "records_imported": self.imported,
            "import_errors": self.import_errors,
            "import_failures": self.import_failures,
            "import_failures_silent": self.import_failures_silent,
            "distinct_ids": len(self.seen),
            "ids_received_more_than_once": sum(1 for n in self.seen.values() if n > 1),
            "queue_depth": queue_depth,
        }


class EmulatorStore:
    """Records by (type, key), the pending import queue and the latest push errors."""

    def __init__(
        self,
        capacity: int,
        *,
        import_failure_rate: float = 0.0,
        silent_share: float = 0.5,
        rng: random.Random | None = None,
    ) -> None:
        self.capacity = capacity
        self.import_failure_rate = import_failure_rate
        #: a push holding a record of one of these ids is answered 503 (``push.py``)
        self.failing_ids: set[str] = set()
        self._silent_share = silent_share
        self._rng = rng or random.Random()
        self._tables: dict[str, dict[str, bytes]] = {}  # type -> key -> encoded record
        #: (type, key) -> wall-clock time of the last import (``updateSince``)
        self.updated_at: dict[tuple[str, str], float] = {}
        #: bumped by every import: read views cache what they build from the tables
        self.version = 0
        #: per type: the keys in import order, and the version they were listed at
        self._key_lists: dict[str, tuple[int, list[str]]] = {}
        #: records lost at import: ``{"type", "key", "id", "silent"}``
        self.lost: list[dict[str, Any]] = []
        self.queue: deque[tuple[str, dict[str, Any]]] = deque()
        self.errors: deque[dict[str, Any]] = deque(maxlen=_ERRORS_KEPT)
        self.stats = Stats()

    @property
    def remaining(self) -> int:
        return max(0, self.capacity - len(self.queue))

    def accept(self, records: list[dict[str, Any]]) -> tuple[str, int, int]:
        """Queue a valid push; returns (request_id, accepted, rejected). Oversize records are
        rejected at once ("Record is too large"), as Ometria counts them in ``rejected``."""
        request_id = str(uuid.uuid4())
        accepted = rejected = 0
        for record in records:
            if len(msgspec.json.encode(record)) > MAX_RECORD_BYTES:
                rejected += 1
                self._error(request_id, record, "Payload invalid: Record is too large.", "")
                continue
            accepted += 1
            self.stats.seen[":".join(record_key(record))] += 1
            self.queue.append((request_id, record))
        self.stats.accepted += accepted
        self.stats.rejected += rejected
        return request_id, accepted, rejected

    def drain(self, count: int) -> None:
        """Import up to ``count`` queued records: validate, then merge or list the error."""
        for _ in range(min(count, len(self.queue))):
            request_id, record = self.queue.popleft()
            problems = _validate(record)
            if problems:
                self.stats.import_errors += 1
                first = problems[0]
                self._error(request_id, record, first.message, first.path)
                continue
            rtype, key = record_key(record)
            if self.import_failure_rate and self._rng.random() < self.import_failure_rate:
                self._lose(request_id, record, rtype, key)
                continue
            table = self._tables.setdefault(rtype, {})
            stored = table.get(key)
            merged = merge(None if stored is None else msgspec.json.decode(stored), record)
            table[key] = msgspec.json.encode(merged)
            self.updated_at[(rtype, key)] = time.time()
            self.version += 1
            self.stats.imported += 1

    def _lose(self, request_id: str, record: dict[str, Any], rtype: str, key: str) -> None:
        """A valid record fails at import: listed in the errors, or (``silent_share``) not."""
        silent = self._rng.random() < self._silent_share
        self.stats.import_failures += 1
        self.lost.append({"type": rtype, "key": key, "id": record.get("id"), "silent": silent})
        if silent:
            self.stats.import_failures_silent += 1
        else:
            self._error(request_id, record, IMPORT_FAILED, "")

    def _error(self, request_id: str, record: dict[str, Any], message: str, path: str) -> None:
        self.errors.append({
            "error_message": message,
            "error_path": " > ".join(["root", *[p for p in path.split(".") if p]]),
            "record_id": record.get("id"),
            "record_type": record.get("@type"),
            "request_id": request_id,
        })

    @property
    def records(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Every imported record, decoded: type -> key -> record (a copy)."""
        return {rtype: self.table(rtype) for rtype in self._tables}

    def table(self, rtype: str) -> dict[str, dict[str, Any]]:
        """The imported records of one type, decoded: key -> record (a copy)."""
        decode = msgspec.json.decode
        return {key: decode(raw) for key, raw in self._tables.get(rtype, {}).items()}

    def raw_items(self, rtype: str) -> ItemsView[str, bytes]:
        """The imported records of one type as stored (key, JSON bytes), in import order; a
        view: read it before the next import."""
        return self._tables.get(rtype, {}).items()

    def raw_table(self, rtype: str) -> Mapping[str, bytes]:
        """The imported records of one type as stored: key -> JSON bytes (a live view)."""
        return self._tables.get(rtype, {})

    def keys(self, rtype: str) -> list[str]:
        """The keys of one type, in the order they were first imported."""
        return list(self._tables.get(rtype, {}))

    def key_page(self, rtype: str, offset: int, limit: int) -> list[str]:
        """``keys(rtype)[offset:offset + limit]``, without listing every key for each page:
        the list is kept until the next import."""
        cached = self._key_lists.get(rtype)
        if cached is None or cached[0] != self.version:
            cached = self._key_lists[rtype] = (self.version, self.keys(rtype))
        return cached[1][offset:offset + limit]

    def get(self, rtype: str, key: str) -> dict[str, Any] | None:
        raw = self._tables.get(rtype, {}).get(key)
        return None if raw is None else msgspec.json.decode(raw)

    def find_contact(self, contact_id: str) -> dict[str, Any] | None:
        for key, raw in self._tables.get("contact", {}).items():
            if key.split("/", 1)[1] == contact_id:
                record: dict[str, Any] = msgspec.json.decode(raw)
                return record
        return None

    def save(self, path: str) -> None:
        tables = {rtype: {key: msgspec.Raw(raw) for key, raw in table.items()}
                  for rtype, table in self._tables.items()}
        data = {"records": tables, "errors": list(self.errors)}
        tmp = Path(path + ".tmp")
        tmp.write_bytes(msgspec.json.encode(data))
        tmp.replace(path)

    def load(self, path: str) -> None:
        file = Path(path)
        if not file.exists():
            return
        data = msgspec.json.decode(file.read_bytes())
        self._tables = {rtype: {key: msgspec.json.encode(record) for key, record in table.items()}
                        for rtype, table in data.get("records", {}).items()}
        self.errors.extend(data.get("errors", []))
        self.version += 1
