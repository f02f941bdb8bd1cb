"""Change detection: which records are unchanged since Ometria last acknowledged them.

Hashes are compared, never records: the stored hash of each id's content at its last clean
acknowledgement (the state store's change index) and the run's own latest version of each id.
Both hashes are :func:`hash64`: of the id's :func:`identity` and of the record's canonical
encoding (sorted keys), signed 64-bit so that SQLite and PostgreSQL store them as integers.

A nightly re-export of two million contacts of which 1% changed should send 20,000 records, not
two million. Guarantees (with ``settle.py``, which writes and forgets the stored hashes):

* a hash is written only after Ometria acknowledged the record (a crash between send and
  acknowledgement leaves the old hash, so the record is sent again);
* a send whose outcome is not a clean acknowledgement (``rejected > 0``: Ometria does not say
  which records it refused; answered ``skipped``; a batch that failed after its retries, or was
  cut off at the grace period) deletes the stored hashes of its ids: Ometria may hold the new
  version or the old one, so the next export sends them whatever their content;
* one write stores one hash per id, the last acknowledged version's;
* a lookup's answer is the index's own, even where it is not asked (a first run: a stream
  whose index held nothing when named is asked only about ids written since,
  ``state/written_ids.py``), so a repeated id is judged against its written hash;
* storage is compact (the state's change index: ``state/change_index_sql.py``,
  ``state/pg_schema.py``):
  the id is kept as a 64-bit hash too, in a WITHOUT ROWID table (two integers per row). Two ids
  sharing an id hash at worst cost an extra send, never a skipped change, unless their content
  hashes also collide (odds around 2^-64 per pair).
"""

from __future__ import annotations

import hashlib
import struct
from collections import deque
from collections.abc import KeysView
from typing import Any

from ometria_sync.pipeline.batch import BatchRecord
from ometria_sync.state import Pending, StateStore

#: content hash of a version whose outcome at Ometria is unknown: equal to no record's hash
UNKNOWN: None = None


def hash64(data: bytes) -> int:
    """A signed 64-bit hash (SQLite's INTEGER range)."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little", signed=True)


#: the state every ``hash64`` starts from (copied, never updated)
_BLAKE64 = hashlib.blake2b(digest_size=8)


def hashes64(data: list[bytes]) -> list[int]:
    """``[hash64(d) for d in data]``: the same values, computed together (each a copy of one
    unkeyed 8-byte BLAKE2b state, cheaper than making a new one; the digests joined and
    unpacked at once)."""
    if not data:
        return []
    copy = _BLAKE64.copy
    digests = []
    for d in data:
        h = copy()
        h.update(d)
        digests.append(h.digest())
    return list(struct.unpack(f"<{len(data)}q", b"".join(digests)))


def identity(record: dict[str, Any]) -> bytes:
    """What identifies a record within a stream: its id, and its collection for contacts."""
    collection = record.get("@collection")
    rid = str(record.get("id"))
    return f"{collection}\x00{rid}".encode() if collection else rid.encode()


class ChangeFilter:
    """Skips records whose content equals what Ometria holds for their id, as far as this run
    knows: the latest version this run sent, else the hash stored at the last acknowledgement.

    With ``refresh`` nothing is skipped, but hashes are still computed (and later stored).
    Lookups (``StateStore.lookup``: inline on the loop's own connection for SQLite, one round
    trip per slice for PostgreSQL; on a stream whose index was empty when the store named it,
    a first run, only the ids the store wrote since are asked about: ``state/written_ids.py``)
    see only committed hashes; so the versions this run decided
    to send are kept here until their hashes are committed (:meth:`written`). A later
    occurrence of an id is therefore judged against the run's own earlier one, never against
    an older stored hash; a version whose outcome is unknown (:meth:`forget`) matches nothing,
    so it is sent again."""

    def __init__(self, state: StateStore, stream_id: int, *, refresh: bool = False) -> None:
        self.state = state
        self.stream_id = stream_id
        self.refresh = refresh
        #: id hash -> content hash of the latest version this run sent, not yet committed
        self._sent: dict[int, int | None] = {}
        #: hash writes submitted, oldest first, with the pairs they write
        self._writes: deque[tuple[Pending, list[tuple[int, int]]]] = deque()
        #: records the ledger watches (``ledger_tick``) found unchanged against a stored hash,
        #: so Ometria acknowledged this very content: the batcher takes them out of the ledger
        self.known_unchanged: list[BatchRecord] = []

    async def unchanged(self, records: list[BatchRecord]) -> set[int]:
        """Indexes into ``records`` (their ``id_hash`` set) of those that are unchanged since
        last sent; every other one counts, from now on, as the version Ometria is getting.
        Each record's ``replaces`` says whether a hash may be stored for its id."""
        if not records:
            return set()
        contents = hashes64([r.encoded for r in records])
        for r, content in zip(records, contents, strict=True):
            r.content_hash = content
        self._prune()
        ids = [r.id_hash for r in records]
        sent = self._sent
        known: dict[int, int] = {}
        if not self.refresh:
            asked = ids if sent.keys().isdisjoint(ids) else [h for h in ids if h not in sent]
            if asked:
                known = await self.state.lookup(self.stream_id, asked)
        if self._all_sent(records, ids, contents, known):
            return set()
        skip: set[int] = set()
        for i, r in enumerate(records):
            if r.id_hash in sent:
                reference, r.replaces, stored = sent[r.id_hash], True, False
            else:
                reference = known.get(r.id_hash)
                r.replaces, stored = self.refresh or reference is not None, True
            if reference == r.content_hash and not self.refresh:
                skip.add(i)
                if stored and r.ledger_tick:  # not a version in flight: an acknowledged one
                    self.known_unchanged.append(r)
            else:
                sent[r.id_hash] = r.content_hash
        return skip

    def _all_sent(self, records: list[BatchRecord], ids: list[int], contents: list[int],
                  known: dict[int, int]) -> bool:
        """What the loop of :meth:`unchanged` does, done at once where nothing can be skipped
        (True: done): on a full refresh (each record replaces, each is sent), or when no id
        was sent by this run nor found by the lookup and no id repeats (a first run: no
        record replaces, each is sent)."""
        sent = self._sent
        if self.refresh:
            for r in records:
                r.replaces = True
        elif (known or not sent.keys().isdisjoint(ids) or len(set(ids)) != len(ids)
              or any([r.replaces for r in records])):
            return False
        sent.update(zip(ids, contents, strict=True))
        return True

    def in_flight(self) -> KeysView[int]:
        """Ids this run sent in a version not yet committed, or forgot: a group of lines
        holding one is never skipped undecoded (``line_groups.py``)."""
        self._prune()
        return self._sent.keys()

    def forget(self, id_hashes: list[int]) -> None:
        """These ids' outcome at Ometria is unknown: no later version in this run is judged
        unchanged against them (the stored hashes are deleted by the caller)."""
        for h in id_hashes:
            self._sent[h] = UNKNOWN

    def written(self, future: Pending, pairs: list[tuple[int, int]]) -> None:
        """``pairs`` (id hash, content hash) are being stored by ``future``: once it is done,
        lookups see them and the run's own copy can go."""
        self._writes.append((future, pairs))

    def _prune(self) -> None:
        sent = self._sent
        while self._writes and self._writes[0][0].done():
            future, pairs = self._writes.popleft()
            if future.cancelled() or future.exception() is not None:
                continue  # not stored: keep the run's own copy (the failure stops the run)
            # the pairs whose version is still the run's latest of its id (an item of
            # ``sent`` equal to the pair): their hashes are committed, the copies go. A plain
            # loop: ``sent.items() & pairs`` builds a set of the pairs, 2.5 to 3 times the
            # time (``BENCHMARKS.md``, ``wip/loop2``)
            get = sent.get
            for id_hash, content_hash in pairs:
                if get(id_hash) == content_hash:
                    del sent[id_hash]

    @property
    def remembered(self) -> int:
        """Versions kept by this run and not yet committed (bounded by what is in flight)."""
        return len(self._sent)
