"""Change detection's fast path: lines Ometria holds as they are are skipped undecoded.

Most nightly files are full exports: millions of lines, a few hundred changed. Decoding,
validating, encoding and hashing each line only to find it unchanged cost five times a bare
``json.loads``. A file source that can (a local JSON Lines or CSV file: ``read_groups``)
hands its lines over in groups, cut where the lines themselves say
(``sources/files/lines.py``; a CSV group ends where a row ends,
``sources/files/csv_groups.py``, and where an order ends when rows are folded into orders,
``sources/files/csv_orders.py``), so a changed or inserted line moves no other group's
boundary. Each group's bytes are hashed together with everything that shapes a record from a
line (:func:`shaping`: the product's version, the stream's settings with its source and
mapping, the transform's code; and the group's ``head``, a CSV file's header); the state
keeps, per stream, the groups whose every record Ometria acknowledged, with those records'
(id hash, content hash) pairs (``state/line_groups_sql.py``).

A group read again is skipped, its lines counted as unchanged, when:

* the state holds its hash and every pair still equals the change index's row for its id: the
  version Ometria acknowledged last is this line, so A -> B -> A sends A the third time (the
  pair of B is stored), as does a record whose hash was forgotten after an unclear answer;
* none of its ids was sent by this run in another version not yet committed, nor forgotten by
  this run (``ChangeFilter``: a later line of an id is judged against the run's own earlier
  one), nor is watched by the ledger of refused records (its row must leave the ledger when
  the record is read back to the acknowledged version: that takes decoding it);
* the part agrees (``skip``, in read order): a CSV file's orders are noted so a later row
  of one is refused as not consecutive, and a group holding an order seen before is decoded
  (and that order refused).

Any other group is decoded and goes through the batcher as usual; it is *kept* (its row
written) once every record in it was found unchanged or acknowledged cleanly, none refused,
filtered or unconfirmed, and no id is in it twice. Writing a group is never needed for
correctness (a group not kept is decoded next time), and its row is judged against the change
index when read, so the order of writes does not matter to it. The checkpoint rules
(``settle.py``) are untouched: a skipped group's position is consumed like an unchanged
record's.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Iterable
from typing import Protocol, runtime_checkable

import msgspec

from ometria_sync._version import __version__
from ometria_sync.config import StreamSettings
from ometria_sync.pipeline.batch import BatchRecord
from ometria_sync.pipeline.change_filter import ChangeFilter, hash64, identity
from ometria_sync.pipeline.transform import Transform
from ometria_sync.sources import LineGroup, Position, SourceItem
from ometria_sync.state import GroupRow, Pointed, StateStore


@runtime_checkable
class GroupedPart(Protocol):
    """A source part that can hand over its lines undecoded (a local JSON Lines or CSV
    file)."""

    def read_groups(self, start: Position | None
                    ) -> AsyncIterator[list[LineGroup]] | AsyncIterator[
                        list[LineGroup] | list[SourceItem]] | None:
        """Groups of lines from ``start`` (or chunks of items, where the part reads some of
        its lines the usual way); None when this part cannot."""

    def decode(self, group: LineGroup) -> list[SourceItem]:
        """The items of one group."""

    def skip(self, group: LineGroup) -> bool:
        """Whether a group Ometria holds may be skipped, called in read order in place of
        :meth:`decode` (a CSV file's orders: False when one of them appeared before); its
        ``held`` is set first when its records' id hashes are those of the ids read."""


def shaping(stream: StreamSettings, transform: Transform | None) -> bytes:
    """What turns a line into the record sent, as bytes: the product's version (its schema
    rules), the stream's settings (record type, mode, strictness, source and mapping) and the
    transform's code. A change to any of them makes every group new."""
    parts = [__version__.encode(), msgspec.json.encode(stream)]
    if transform is not None:
        parts.append(transform.fingerprint())
    return hashlib.sha1(b"\x00".join(parts)).digest()


def group_hash(shape: bytes, lines: list[bytes]) -> int:
    """A signed 64-bit hash of a group's lines under ``shape``."""
    digest = hashlib.sha1(shape + b"\n".join(lines)).digest()
    return int.from_bytes(digest[:8], "little", signed=True)


def ledger_hashes(keys: Iterable[str]) -> set[int]:
    """The id hashes (:func:`identity`) a ledger key may stand for: ``collection/id`` is a
    collection and an id, or an id with a ``/`` in it (a superset is safe: more decoding)."""
    found: set[int] = set()
    for key in keys:
        found.add(hash64(key.encode()))
        for i, c in enumerate(key):
            if c == "/":
                found.add(hash64(f"{key[:i]}\x00{key[i + 1:]}".encode()))
    return found


class _Open(msgspec.Struct, gc=False):
    """A decoded group on its way to being kept."""

    hash: int
    items: int  # its items the batcher has yet to take
    ids: list[int] = msgspec.field(default_factory=list)
    contents: list[int] = msgspec.field(default_factory=list)
    waiting: int = 0  # its records sent and not yet acknowledged
    spoiled: bool = False  # a record refused, filtered or unconfirmed: never kept


#: groups to keep waiting for a hash write (which points them) before they are written anyway
MAX_KEEP_WAITING = 1000
#: groups skipped whose mark waits to be written (an unchanged night writes nothing else)
MAX_SEEN_WAITING = 4096


class LineGroups:
    """One part's groups: which are skipped, which are decoded, which are kept.

    The batcher calls :meth:`items` for each chunk of groups (in read order: a skip is judged
    after every earlier line went through the change filter), then :meth:`took` for each item
    of a decoded group; ``settle.py`` calls :meth:`acknowledged` and :meth:`spoil`, and
    :meth:`flush` with its hash writes."""

    def __init__(self, state: StateStore, changes: ChangeFilter, part: GroupedPart,
                 shape: bytes, *, watched: set[int] | None = None,
                 marker: int | None = None, ids_as_read: bool = False) -> None:
        self._state = state
        self._changes = changes
        self._part = part
        self._shape = shape
        #: a record's id hash is that of the id the part read (no transform): a group's held
        #: ids go to the part's ``skip`` with it (``LineGroup.held``)
        self._ids_as_read = ids_as_read
        #: id hashes the ledger watches (refused before, or by this run): decoded, never skipped
        self.watched = watched if watched is not None else set()
        #: this run's mark on the groups it reads or writes (the others are pruned)
        self.marker = marker if marker is not None else int.from_bytes(os.urandom(7), "little")
        self._open: dict[int, _Open] = {}
        self._next = 0
        self._keep: list[GroupRow] = []
        self._seen: list[int] = []
        #: lines skipped undecoded (for tests and the benchmark)
        self.skipped = 0

    def read_groups(self, start: Position | None
                    ) -> AsyncIterator[list[LineGroup]] | AsyncIterator[
                        list[LineGroup] | list[SourceItem]] | None:
        """The part's groups of lines from ``start`` (None: it cannot; read it as usual)."""
        return self._part.read_groups(start)

    async def items(self, groups: list[LineGroup]) -> list[SourceItem]:
        """The items of ``groups``: one per skipped group (``unchanged``: its records, no
        record), the decoded items of the others (tagged with their group)."""
        # the state's writes of groups (weighed by their ids) bound what a night holds: on an
        # unchanged night nothing else waits for the state, and its queue would grow instead
        await self._state.catch_up()
        shape = self._shape
        hashes = [group_hash(shape + g.head if g.head else shape, g.lines)  # type: ignore[arg-type]
                  if g.plain else 0 for g in groups]
        wanted = [h for h in hashes if h]
        held = await self._state.held_groups(self._changes.stream_id, wanted) if wanted else {}
        sent = self._changes.in_flight()
        watched = self.watched
        items: list[SourceItem] = []
        for group, h in zip(groups, hashes, strict=True):
            ids = held.get(h) if h else None
            if ids is not None and self._ids_as_read:
                group.held = ids
            if (ids is not None and sent.isdisjoint(ids) and watched.isdisjoint(ids)
                    and self._part.skip(group)):
                items.append(SourceItem(record=None, position=group.end, line=group.end[1],
                                        unchanged=len(ids)))
                self._seen.append(h)
                self.skipped += len(ids)
                continue
            decoded = self._part.decode(group)
            if h and decoded:
                self._next += 1
                self._open[self._next] = _Open(h, len(decoded))
                for item in decoded:
                    item.group = self._next
            items.extend(decoded)
        if len(self._seen) >= MAX_SEEN_WAITING:
            self.flush()
        return items

    def took(self, item: SourceItem | BatchRecord, record: BatchRecord | None,
             sent: bool) -> None:
        """The batcher took ``item`` of a decoded group: refused or filtered (``record``
        None), unchanged, or ``sent``."""
        group = self._open.get(item.group)
        if group is None:
            return
        group.items -= 1
        if record is None:
            group.spoiled = True
        else:
            group.ids.append(record.id_hash)
            group.contents.append(record.content_hash)
            if sent:
                record.group = item.group
                group.waiting += 1
        self._settled(item.group, group)

    def refused(self, record: object) -> None:
        """A record refused by this run: the ledger watches its id from now on."""
        if isinstance(record, dict) and record.get("id") is not None:
            self.watched.add(hash64(identity(record)))

    def acknowledged(self, records: list[BatchRecord]) -> None:
        """Ometria acknowledged these cleanly."""
        for r in records:
            group = self._open.get(r.group) if r.group else None
            if group is not None:
                group.waiting -= 1
                self._settled(r.group, group)

    def spoil(self, records: list[BatchRecord]) -> None:
        """These records' outcome is not a clean acknowledgement: their groups are not kept."""
        for r in records:
            group = self._open.get(r.group) if r.group else None
            if group is not None:
                group.spoiled = True
                self._settled(r.group, group)

    def _settled(self, tag: int, group: _Open) -> None:
        if group.items or (group.waiting and not group.spoiled):
            return
        del self._open[tag]
        if not group.spoiled and len(set(group.ids)) == len(group.ids):
            self._keep.append((group.hash, group.ids, group.contents))
            if len(self._keep) >= MAX_KEEP_WAITING:  # no hash written for a while: an
                self.flush()  # unchanged night's groups go now, checked against stored rows

    def pointers(self, acked: dict[int, int]) -> tuple[dict[int, int], list[Pointed]]:
        """For the hashes about to be written (``acked``: id hash -> content hash), the
        groups to keep whose every record is among them: id hash -> group to write in the
        same rows, and those groups, taken from the ones to keep (writing the rows again to
        point them was most of a first run's cost of keeping groups)."""
        points: dict[int, int] = {}
        pointed: list[Pointed] = []
        rest: list[GroupRow] = []
        for g, ids, contents in self._keep:
            if all(acked.get(i) == c and i not in points
                   for i, c in zip(ids, contents, strict=True)):
                points.update(dict.fromkeys(ids, g))
                pointed.append((g, ids))
            else:
                rest.append((g, ids, contents))
        self._keep = rest
        return points, pointed

    def flush(self, pointed: list[Pointed] | None = None) -> None:
        """Hand the groups to keep (``pointed``: those whose rows were just written pointing
        to them), and the hashes of those skipped, to the state store."""
        if self._keep or self._seen or pointed:
            keep, self._keep = self._keep, []
            seen, self._seen = self._seen, []
            self._state.keep_groups(self._changes.stream_id, self.marker, keep, seen,
                                    pointed or [])

    def prune(self) -> None:
        """The stream was read whole: the groups this run did not see are of an older
        export; deleted (after everything written before)."""
        self._state.prune_groups(self._changes.stream_id, self.marker)
