"""The ledger, run side: which of this run's refusals are new and which are known, and which
records leave the ledger because Ometria acknowledged them.

A nightly full export refuses the same bad rows every night; a job that exits 3 for them every
night says nothing (review item 5). The state keeps a ledger of refused records, one row per
stream and key (``LedgerEntry``: the id, or the source position of a record without a valid
id), with the content hash of what was refused. :class:`RecordLedger` holds one stream's rows
for the run:

* a refusal whose key is in the ledger with the same content hash, first refused by an
  earlier run, is *known*; any other refusal (a key not there, or new content) is *new*. The
  stream's counters (``refused_new``, ``refused_known``, ``refused_known_since``) say which,
  and the exit code (``[run] exit_on``) follows them;
* a record whose key is in the ledger and that Ometria acknowledged leaves it. Its row is
  dropped by :meth:`RecordLedger.acknowledged`, which ``settle.py`` calls for a batch's clean
  acknowledgement, so never before it (and the batcher, for a record change detection finds
  equal to the version Ometria acknowledged earlier: fixed back to it, nothing to send). A
  later version of the same id refused after the acknowledged one was read keeps its row:
  each refusal and each watched record carries a tick of the order they were read in, and
  only a refusal read before the acknowledged version is dropped;
* rows are handed to the state store's ordered write queue (``put_ledger``, ``drop_ledger``):
  refusals by :meth:`RecordLedger.sync`, which ``settle.py`` calls with the dead letter's,
  before every checkpoint, so a checkpoint never passes a refusal the ledger does not hold;
  a failed write stops the queue behind it like any other (``FirstFailure``).

**Undelivered records** (a batch whose retries ran out, one cut off at the grace period, an
answer that does not confirm each record: ``rejected``/``skipped``) are noted too, by
:meth:`RecordLedger.undelivered`, with the record as sent (``payload``): a source read behind a
cursor, or a nightly file replaced by the next one, may never give them again. The next run
resends them first (:class:`LedgerPart`, read before the source's own parts and never
checkpointed) until Ometria acknowledges them; a record still undelivered after
``max_attempts`` runs is *parked*: kept, reported, not resent. The promise holds: a later
version of the same id always wins over a stored payload. Within a run, versions of one id
settle in the order they were read (``VersionOrder``), so an acknowledgement of an id that
arrives after its undelivered note is of a later version, and drops the row
(``order_key``); across runs, the resend part is over before the source's parts are read, so
whatever the source gives for the id is sent after the stored payload.

**Found not in Ometria by verify** (missing, different, or listed in ``/push/_errors`` with
its id): ``verify`` writes the row (:func:`verify_finding`, kind ``missing``, the record's latest
version as its payload); the next run resends it first like an undelivered record, and its
acknowledgement does not drop it but marks it ``unverified`` (sent again, acknowledged, not yet
seen in Ometria): the next verify that finds it in Ometria drops it, one that finds it missing
again makes it ``missing`` with one attempt more (parked after ``max_attempts``).

A run with an empty ledger pays one attribute test per record (``active``); with rows, a
slice's keys are queried only where the in-memory filter of its keys (``ledger_keys.py``) says
they may be there.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Protocol, runtime_checkable

import msgspec

from ometria_sync.pipeline.ledger_keys import KeyFilter
from ometria_sync.pipeline.stats import StreamStats
from ometria_sync.pipeline.transform import Transform
from ometria_sync.schemas import Problem
from ometria_sync.sources import Position, SourceItem
from ometria_sync.state import LedgerEntry, Pending, StateStore, utc_now

#: refusals held before they are handed to the store without waiting for a checkpoint
_ROWS_PER_WRITE = 1000
_encode = msgspec.json.Encoder(order="sorted", enc_hook=repr).encode
_POSITION = "position "
REFUSED, UNDELIVERED, PARKED = "refused", "undelivered", "parked"
#: found not in Ometria by verify (resent first); resent and acknowledged, not yet verified
MISSING, UNVERIFIED = "missing", "unverified"
#: the kinds the next run resends first
RESENT_KINDS = frozenset({UNDELIVERED, MISSING})


class Sent(Protocol):
    """A record as it went to Ometria (a ``BatchRecord``)."""

    @property
    def encoded(self) -> bytes: ...
    @property
    def order_key(self) -> int: ...
    @property
    def ledger_tick(self) -> int: ...


def record_key(record: Any, position: Position | None, record_id: str | None = None) -> str:
    """What names a record in the ledger: its id (``collection/id`` when it has a
    ``@collection``; ``record_id``, the id the source read, for a row refused before it became
    a record), or ``position <json>`` when it has no valid id (a valid id has no space, so the
    two never meet)."""
    if isinstance(record, dict):
        rid = record.get("id")
        collection = record.get("@collection")
    else:
        rid, collection = record_id, None
    if isinstance(rid, str) and rid and " " not in rid:
        return f"{collection}/{rid}" if isinstance(collection, str) and collection else rid
    return _POSITION + _encode(position).decode()


def content_hash(record: Any, raw: bytes | str | None) -> int:
    """A signed 64-bit hash of what was refused: the decoded record (canonical, sorted keys)
    when there is one, else the raw input."""
    if record is not None:
        try:
            data = _encode(record)
        except (TypeError, ValueError, OverflowError):
            data = repr(record).encode()
    elif isinstance(raw, str):
        data = raw.encode("utf-8", "surrogateescape")
    else:
        data = raw or b""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little", signed=True)


def _id_candidates(key: str) -> list[str]:
    """The raw ids a record with ``key`` may carry (a superset: confirmed by the full key)."""
    if key.startswith(_POSITION):
        return []
    return [key, *(key[i + 1:] for i, c in enumerate(key) if c == "/")]


class RecordLedger:
    """One stream's ledger during a run (every part of the stream shares it), holding no row
    of the store for the run: memory stays flat however many records a night refuses.

    What it holds: the rows this run wrote until their write is committed (``_overlay``:
    the run's latest row per key, None for a dropped one; the store answers for the rest),
    the rows of the last :meth:`look_up` (a slice's keys, read by key), the undelivered and
    parked rows (few: the next run resends them), and the ticks of records in flight.
    :meth:`refused` and :meth:`watch` judge a key by the overlay, else the last look-up: the
    batcher (and the dispatcher, for Ometria's refusals) looks up a slice's keys first."""

    def __init__(self, state: StateStore, stream: str, run_id: str, stats: StreamStats, *,
                 keys: KeyFilter | None = None, unsent: Iterable[LedgerEntry] = (),
                 now: Callable[[], str] = utc_now, max_attempts: int = 5) -> None:
        self._state = state
        self._stream = stream
        self._run_id = run_id
        self._stats = stats
        self._now = now
        self._max_attempts = max_attempts
        #: the keys the store may hold rows of (only those are looked up)
        self._keys = keys if keys is not None else KeyFilter()
        #: key -> this run's latest row (None: dropped) until the write of it is committed
        self._overlay: dict[str, LedgerEntry | None] = {}
        #: rows noted and not yet handed to the store (also in the overlay)
        self._pending: dict[str, LedgerEntry] = {}
        #: writes handed to the store, oldest first, with the rows (None: dropped) they write
        self._writes: deque[tuple[Pending, dict[str, LedgerEntry | None]]] = deque()
        #: the stored rows of the last look-up's keys
        self._found: dict[str, LedgerEntry] = {}
        #: undelivered and parked rows (read at start, kept up to date)
        self._unsent = {e.key: e for e in unsent}
        self._tick = 0
        self._watched: dict[int, str] = {}  # tick -> key of a record on its way to Ometria
        self._watching: dict[str, int] = {}  # key -> its ticks in flight
        #: key with ticks in flight -> (tick, row kept) of its latest refusal or drop since
        self._since: dict[str, tuple[int, bool]] = {}
        #: order key -> ledger key of records noted undelivered by this run
        self._undelivered: dict[int, str] = {}
        #: key -> content hash of a record Ometria refused (its undelivered note is skipped)
        self._by_ometria: dict[str, int] = {}

    @classmethod
    async def open(cls, state: StateStore, stream: str, run_id: str, stats: StreamStats, *,
                   now: Callable[[], str] = utc_now, max_attempts: int = 5) -> RecordLedger:
        """The stream's ledger for this run: its keys (hashed: ``KeyFilter``) and its unsent
        rows read, nothing else."""
        keys = KeyFilter()
        async for page in _key_pages(state, stream):
            keys.add_all(page)
        unsent = await state.ledger(stream, unsent=True) if keys else []
        return cls(state, stream, run_id, stats, keys=keys, unsent=unsent, now=now,
                   max_attempts=max_attempts)

    @property
    def active(self) -> bool:
        """False while the ledger is empty (a record then costs one attribute test)."""
        return bool(self._keys) or bool(self._overlay) or bool(self._undelivered)

    async def look_up(self, keys: Iterable[str]) -> None:
        """Read the stored rows of ``keys`` (those this run wrote since are in the overlay;
        those the filter rules out are not queried): :meth:`refused` and :meth:`watch` judge
        these keys until the next look-up."""
        self._prune()
        overlay = self._overlay
        may_hold = self._keys.may_hold
        wanted = [k for k in dict.fromkeys(keys) if k not in overlay and may_hold(k)]
        rows = await self._state.ledger_lookup(self._stream, wanted) if wanted else []
        self._found = {e.key: e for e in rows}

    def may_hold(self, key: str) -> bool:
        """Whether the ledger may hold a row of ``key`` (False: certainly not, no query)."""
        return key in self._overlay or self._keys.may_hold(key)

    def _row(self, key: str) -> LedgerEntry | None:
        overlay = self._overlay
        return overlay[key] if key in overlay else self._found.get(key)

    async def keys(self) -> list[str]:
        """Every key the stream's ledger holds, stored (read a page at a time) or written by
        this run: for the line groups' watch list, built only when a part skips lines."""
        keys = [k for k, row in self._overlay.items() if row is not None]
        async for page in _key_pages(self._state, self._stream):
            keys.extend(page)
        return keys

    def watch(self, record: dict[str, Any]) -> int:
        """The tick of a valid record on its way to Ometria whose key is in the ledger (0: not
        there); :meth:`acknowledged` takes the ticks of those Ometria acknowledged."""
        if not self._overlay and not self._found:
            return 0
        key = record_key(record, None)
        if self._row(key) is None:
            return 0
        self._tick += 1
        self._watched[self._tick] = key
        self._watching[key] = self._watching.get(key, 0) + 1
        return self._tick

    def _unwatch(self, tick: int) -> str | None:
        key = self._watched.pop(tick, None)
        if key is not None:
            left = self._watching.pop(key) - 1
            if left:
                self._watching[key] = left
            else:
                self._since.pop(key, None)
        return key

    def refused(self, reasons: list[Problem], record: Any, raw: bytes | str | None,
                position: Position | None, record_id: str | None = None, *,
                by_ometria: bool = False) -> str | None:
        """Note a refusal; the time its content was first refused when it is known (None: new).
        ``record_id``: the id the source read of a row refused before it became a record;
        ``by_ometria``: Ometria refused it (its undelivered note is then skipped)."""
        key = record_key(record, position, record_id)
        digest = content_hash(record, raw)
        now = self._now()
        old = self._row(key)
        reason = "; ".join(f"{p.path}: {p.message}" if p.path else p.message for p in reasons)
        self._tick += 1
        if key in self._watching:
            self._since[key] = (self._tick, True)
        if by_ometria:
            self._by_ometria[key] = digest
        stats = self._stats
        if old is not None and old.content_hash == digest:
            again = old.last_run != self._run_id
            entry = msgspec.structs.replace(
                old, reason=reason, last_run=self._run_id, last_seen=now,
                attempts=old.attempts + again)
            known = old.first_run != self._run_id
        else:
            entry = LedgerEntry(self._stream, key, reason, digest, self._run_id, now,
                                self._run_id, now)
            known = False
        if known:
            stats.refused_known += 1
            since = stats.refused_known_since
            stats.refused_known_since = min(since, entry.first_seen) if since else entry.first_seen
        else:
            stats.refused_new += 1
        self._unsent.pop(key, None)
        self._note(entry)
        return entry.first_seen if known else None

    def _note(self, entry: LedgerEntry) -> None:
        self._overlay[entry.key] = self._pending[entry.key] = entry
        self._keys.add(entry.key)
        if len(self._pending) >= _ROWS_PER_WRITE:
            self.sync()

    def undelivered(self, records: Iterable[Sent], reason: str) -> None:
        """These records went to Ometria without a clean acknowledgement: noted with their
        payload, to be resent by the next run (parked after ``max_attempts`` runs). A record
        Ometria refused by itself (400/413/422) is a refusal, already noted."""
        now = self._now()
        for sent in records:
            if sent.ledger_tick:
                self._unwatch(sent.ledger_tick)
            record = msgspec.json.decode(sent.encoded)
            key = record_key(record, None)
            digest = content_hash(record, None)
            if self._by_ometria.pop(key, None) == digest:
                continue  # refused by Ometria in this run: a refusal, not a loss
            old = self._unsent.get(key)  # every row of the stream not a refusal
            attempts = old.attempts + (old.last_run != self._run_id) if old else 1
            from_verify = old is not None and old.kind in (MISSING, UNVERIFIED)
            kind = (PARKED if attempts >= self._max_attempts
                    else MISSING if from_verify else UNDELIVERED)
            if kind == PARKED and (old is None or old.kind != PARKED):
                self._stats.parked += 1
            first_run, first_seen = (old.first_run, old.first_seen) if old else (
                self._run_id, now)
            entry = LedgerEntry(self._stream, key, reason, digest, first_run, first_seen,
                                self._run_id, now, attempts, kind, sent.encoded.decode())
            self._unsent[key] = entry
            self._undelivered[sent.order_key] = key
            self._stats.undelivered += 1
            self._note(entry)

    def acknowledged(self, records: Iterable[Sent]) -> None:
        """Ometria acknowledged these records: those the ledger holds leave it (one a verify
        found not in Ometria stays, as unverified, until a verify finds it), unless a later
        version of their key was refused since (ticks: read order) or noted undelivered since
        (a later version's note comes after this one's acknowledgement)."""
        keys = []
        kept = False
        undelivered = self._undelivered
        for sent in records:
            key = None
            tick = sent.ledger_tick
            if tick:
                since = self._since.get(self._watched.get(tick, ""))
                key = self._unwatch(tick)
                if since is not None and (since[0] > tick or not since[1]):
                    key = None  # refused again since it was read, or already dropped
            if undelivered and sent.order_key in undelivered:
                key = undelivered.pop(sent.order_key)
            if key is None or (key in self._overlay and self._overlay[key] is None):
                continue
            old = self._unsent.get(key)  # a refusal's row is not there: it is dropped
            if old is not None and old.kind in (MISSING, UNVERIFIED):  # stays until verified
                entry = msgspec.structs.replace(old, kind=UNVERIFIED, last_run=self._run_id,
                                                last_seen=self._now())
                self._unsent[key] = entry
                self._note(entry)
                kept = True
                continue
            self._pending.pop(key, None)
            self._unsent.pop(key, None)
            self._overlay[key] = None
            self._tick += 1
            if key in self._watching:
                self._since[key] = (self._tick, False)
            keys.append(key)
        if keys or kept:
            self.sync()  # a refusal handed over earlier is written before the drop
        if keys:
            self._writes.append((self._state.drop_ledger(self._stream, keys),
                                 dict.fromkeys(keys)))
            self._stats.ledger_left += len(keys)

    def resend_part(self, source_parts: list[Any],
                    transform: Transform | None = None) -> LedgerPart | None:
        """The undelivered records to send before the source's own parts (None: none), read
        again by id from a source of one part that can (``transform``: the stream's, for
        what is read again)."""
        entries = [e for e in self._unsent.values() if e.kind in RESENT_KINDS and e.payload]
        if not entries:
            return None
        part = source_parts[0] if len(source_parts) == 1 else None
        return LedgerPart(entries, self._stats,
                          part if isinstance(part, ReadsById) else None, transform)

    def sync(self) -> None:
        """Hand the rows noted so far to the store's ordered write queue."""
        if self._pending:
            rows, self._pending = self._pending, {}
            written: dict[str, LedgerEntry | None] = dict(rows)
            self._writes.append((self._state.put_ledger(list(rows.values())), written))

    def _prune(self) -> None:
        """Forget the overlay's rows whose write is committed (the store answers for them)."""
        overlay = self._overlay
        while self._writes and self._writes[0][0].done():
            future, written = self._writes.popleft()
            if future.cancelled() or future.exception() is not None:
                continue  # not stored: keep the run's own copy (the failure stops the run)
            for key, entry in written.items():
                if key in overlay and overlay[key] is entry:
                    del overlay[key]


async def _key_pages(state: StateStore, stream: str) -> AsyncIterator[list[str]]:
    """The keys of ``stream``'s stored ledger rows, a page at a time, in key order."""
    page = await state.ledger_keys(stream)
    while page:
        yield page
        page = await state.ledger_keys(stream, after=page[-1])


def verify_finding(old: LedgerEntry | None, stream: str, record: dict[str, Any], reason: str,
                   run_id: str, now: str, max_attempts: int) -> LedgerEntry | None:
    """The row for a record ``verify`` (run ``run_id``) found not in Ometria in its latest
    version ``record``, given the stream's row for its key (None: no row; a refused row is
    kept as it is: None). Found again after a resend was acknowledged: one attempt more."""
    if old is not None and old.kind == REFUSED:
        return None
    attempts = 1 if old is None else old.attempts + (old.kind == UNVERIFIED)
    first_run, first_seen = (run_id, now) if old is None else (old.first_run, old.first_seen)
    return LedgerEntry(stream, record_key(record, None), reason, content_hash(record, None),
                       first_run, first_seen, run_id, now, attempts,
                       PARKED if attempts >= max_attempts else MISSING,
                       _encode(record).decode())


def leaves_when_verified(entry: LedgerEntry) -> bool:
    """Whether ``verify`` finding the record in Ometria in its latest version drops the row:
    every kind but a refusal (the source's version is refused: it was never sent)."""
    return entry.kind != REFUSED


@runtime_checkable
class ReadsById(Protocol):
    """A source part that can read records again by id (a SQL query by its ``id`` column)."""

    async def read_ids(self, ids: list[str]) -> list[SourceItem] | None: ...


class LedgerPart:
    """The undelivered records of a stream as a source part, in the order they were first
    noted: read again from the source by id where it can (``reread``: its current version),
    else (a file source; a row no longer there) the payload kept, as last sent. Read first and
    never checkpointed (``stream_run.py``)."""

    def __init__(self, entries: list[LedgerEntry], stats: StreamStats,
                 reread: ReadsById | None = None, transform: Transform | None = None) -> None:
        self._entries = sorted(entries, key=lambda e: (e.first_seen, e.key))
        self._stats = stats
        self.reread = reread
        #: the stream's transform: applied here to the rows read again, never to a kept
        #: payload (already the transform's result when it was sent); the batcher applies
        #: none to this part
        self._transform = transform

    @property
    def key(self) -> str:
        return "(ledger)"

    @property
    def label(self) -> str:
        return "the ledger (records not yet delivered)"

    async def fingerprint(self) -> str | None:
        return None

    async def size(self) -> int | None:
        return None

    async def read(self, start: Position | None) -> AsyncIterator[list[SourceItem]]:
        fresh: dict[str, Any] = {}
        if self.reread is not None:
            ids = sorted({i for e in self._entries for i in _id_candidates(e.key)})
            for item in await self.reread.read_ids(ids) or []:
                record = item.record
                if item.error is not None or not isinstance(record, dict):
                    continue
                if self._transform is not None:
                    # skipped or failed now: the payload kept goes, as for a row gone
                    record, _failed = self._transform.apply(record)
                    if record is None:
                        continue
                fresh[record_key(record, None)] = record
        items = []
        for n, entry in enumerate(self._entries, 1):
            if entry.key in fresh:
                items.append(SourceItem(fresh[entry.key], ["ledger", n]))
                continue
            payload = entry.payload or ""
            try:
                items.append(SourceItem(msgspec.json.decode(payload), ["ledger", n]))
            except msgspec.DecodeError as exc:
                items.append(SourceItem(None, ["ledger", n], raw=payload,
                                        error=f"kept payload unreadable: {exc}"))
        self._stats.resent += len(items)
        self._stats.reread += len(fresh)
        yield items
