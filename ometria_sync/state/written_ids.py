"""Which ids a change index may hold a hash for, known without asking it: a first run's
change-index lookups skipped.

A first export of a stream looks up every id it reads, and finds none: nothing was stored
before it. That was about 0.45 of the 1.0 CPU seconds change detection's state side cost a
first run of 200,000 contacts (``BENCHMARKS.md``, issue 34). So each store notes, per stream,
whether the stream's change index held nothing when the store first named the stream
(``StateStore.stream_id``), and from then on a bitmap of the id hashes it submitted to be
written there. A lookup asks the index only about ids whose bit is set: any other id cannot be
stored, since nothing was before and this store did not write it.

Guarantees:

* a lookup's answer is the index's own: an id left out is one the index cannot hold (no
  false negative), given that only this store writes the stream's hashes while it is open
  (the job's run lock; only a run writes change hashes). A set bit only costs the lookup
  it would have cost anyway (about 11% of new ids after a million were written, 70% after
  ten million);
* a stream that held anything when first named (a rerun, a resume after a crash that had
  written some), or whose first write came before it was named, is looked up in full;
* an id's bit is set when its write is submitted, before it can commit, and never cleared
  (a deleted hash, ``forget_ids``, ``reset``, leaves it set: the lookup then finds nothing);
* memory: one bitmap of ``BITS`` bits (1 MB) per stream that was empty, none otherwise (a
  job's first run of several streams holds one for each until the run ends); with
  ``second_bits``, a second bitmap of that many bits beside it.

A lookup that is a round trip (PostgreSQL) costs more than one answered inline (SQLite): a
second bitmap, indexed by other bits of the id hash, lets through only ids both bitmaps hold.
With a second bitmap of 2**24 bits (2 MB), a first run of a million ids asks the server about
1,800 slices of 128 ids instead of 7,300 (a new id passes the first bitmap with a chance of
about 11% at the end, and both with about 0.7%).
"""

from __future__ import annotations

from collections.abc import Iterable

#: bits in each stream's bitmap (a power of two): an id hash's low bits pick its bit
BITS = 1 << 23
_BYTE_MASK = BITS // 8 - 1


class WrittenIds:
    """Per stream: None, it is looked up in full; else the bitmaps of ids written since it
    was found empty."""

    def __init__(self, second_bits: int = 0) -> None:
        """``second_bits``: the size of a second bitmap (a power of two up to 2**41; 0: none)."""
        self._streams: dict[int, tuple[bytearray, bytearray] | None] = {}
        self._second = second_bits // 8

    def named(self, stream: int, *, empty: bool) -> None:
        """The store named ``stream``, whose index held nothing (``empty``) when asked. Only
        the first word about a stream counts (a write before it counts as a word)."""
        if stream not in self._streams:
            self._streams[stream] = ((bytearray(BITS // 8), bytearray(self._second))
                                     if empty else None)

    def written(self, stream: int, pairs: Iterable[tuple[int, int]]) -> None:
        """Hashes of these (id hash, content hash) pairs are submitted to the index."""
        bitmaps = self._streams.setdefault(stream, None)
        if bitmaps is None:
            return
        bits, second = bitmaps
        if second:
            self.new_written(stream, [h for h, _ in pairs])
            return
        mask = _BYTE_MASK
        for h, _ in pairs:
            bits[(h >> 3) & mask] |= 1 << (h & 7)

    def new_written(self, stream: int, id_hashes: list[int]) -> list[bool]:
        """:meth:`written` for these ids, and for each whether the index cannot hold it yet
        (a bit of it was clear before, and it did not come earlier among ``id_hashes``): an
        insert of it finds no row. All False for a stream looked up in full."""
        bitmaps = self._streams.setdefault(stream, None)
        if bitmaps is None:
            return [False] * len(id_hashes)
        bits, second = bitmaps
        mask, mask2 = _BYTE_MASK, len(second) - 1
        new: list[bool] = []
        for h in id_hashes:
            at, bit = (h >> 3) & mask, 1 << (h & 7)
            old = bits[at] & bit
            bits[at] |= bit
            if second:
                at, bit = (h >> 26) & mask2, 1 << ((h >> 23) & 7)
                old = old and second[at] & bit
                second[at] |= bit
            new.append(not old)
        return new

    def may_hold(self, stream: int, id_hashes: list[int]) -> list[int]:
        """Those of ``id_hashes`` the index may hold a hash for: all of them for a stream
        looked up in full (or not named yet)."""
        bitmaps = self._streams.get(stream)
        if bitmaps is None:
            return id_hashes
        bits, second = bitmaps
        mask = _BYTE_MASK
        maybe = [h for h in id_hashes if bits[(h >> 3) & mask] >> (h & 7) & 1]
        if maybe and second:
            mask = len(second) - 1
            maybe = [h for h in maybe if second[(h >> 26) & mask] >> ((h >> 23) & 7) & 1]
        return maybe
