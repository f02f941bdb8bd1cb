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
  job's first run of several streams holds one for each until the run ends).
"""

from __future__ import annotations

from collections.abc import Iterable

#: bits in each stream's bitmap (a power of two): an id hash's low bits pick its bit
BITS = 1 << 23
_BYTE_MASK = BITS // 8 - 1


class WrittenIds:
    """Per stream: None, it is looked up in full; else the bitmap of ids written since it was
    found empty."""

    def __init__(self) -> None:
        self._streams: dict[int, bytearray | None] = {}

    def named(self, stream: int, *, empty: bool) -> None:
        """The store named ``stream``, whose index held nothing (``empty``) when asked. Only
        the first word about a stream counts (a write before it counts as a word)."""
        if stream not in self._streams:
            self._streams[stream] = bytearray(BITS // 8) if empty else None

    def written(self, stream: int, pairs: Iterable[tuple[int, int]]) -> None:
        """Hashes of these (id hash, content hash) pairs are submitted to the index."""
        bits = self._streams.setdefault(stream, None)
        if bits is None:
            return
        mask = _BYTE_MASK
        for h, _ in pairs:
            bits[(h >> 3) & mask] |= 1 << (h & 7)

    def may_hold(self, stream: int, id_hashes: list[int]) -> list[int]:
        """Those of ``id_hashes`` the index may hold a hash for: all of them for a stream
        looked up in full (or not named yet)."""
        bits = self._streams.get(stream)
        if bits is None:
            return id_hashes
        mask = _BYTE_MASK
        return [h for h in id_hashes if bits[(h >> 3) & mask] >> (h & 7) & 1]
