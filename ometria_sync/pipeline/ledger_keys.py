"""Which keys a stream's ledger may hold, kept in memory for a run (``KeyFilter``): the run
queries the state store only for keys that may be there.

A run reads its ledger by key, a slice of records at a time (``ledger.py``). Most records read
are not in the ledger, and a query per slice costs more CPU than the ledger is allowed (issue
31: under 5% per record). The filter answers "not there" without a query, and "maybe there"
for every key the ledger held at the start of the run or that the run wrote since: never a
wrong "not there", so a row is never missed. A "maybe" for a key no longer there (dropped, or
a hash collision: 1 in 2**64 a pair) only costs a query.

Memory: 8 bytes per key read at start (a sorted ``array('q')`` of the keys' hashes, no key
kept), and the hashes of keys the run wrote since in a set, merged into the array once the set
grows past an eighth of it (so the set stays small and the merges cost a constant per key).
The hash is Python's own ``hash(str)``: 64 bits, cached on the key string, and stable within
the process, which is all a run's filter lives for.
"""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_left
from collections.abc import Iterable

#: the set of new hashes is merged into the array past this size (or an eighth of the array)
_MERGE_AT = 4096


class KeyFilter:
    """The hashes of the keys a stream's ledger may hold."""

    def __init__(self) -> None:
        self._sorted = array("q")
        self._new: set[int] = set()

    def __bool__(self) -> bool:
        return bool(self._sorted) or bool(self._new)

    def __len__(self) -> int:
        return len(self._sorted) + len(self._new)

    def may_hold(self, key: str) -> bool:
        """False when the ledger cannot hold ``key``; True when it may."""
        h = hash(key)
        if h in self._new:
            return True
        hashes = self._sorted
        at = bisect_left(hashes, h)
        return at < len(hashes) and hashes[at] == h

    def add(self, key: str) -> None:
        """A key the run wrote a row for: the ledger may hold it from now on."""
        if self.may_hold(key):
            return
        self._new.add(hash(key))
        if len(self._new) > max(_MERGE_AT, len(self._sorted) >> 3):
            self._merge()

    def add_all(self, keys: Iterable[str]) -> None:
        """Keys the ledger holds (a page of them read at start: never all held at once)."""
        for key in keys:
            self.add(key)

    def _merge(self) -> None:
        """Fold the new hashes into the sorted array (one pass, no list of the whole)."""
        new = sorted(self._new)
        merged = array("q")
        last = None
        for h in heapq.merge(self._sorted, new):
            if h != last:
                merged.append(h)
                last = h
        self._sorted, self._new = merged, set()
