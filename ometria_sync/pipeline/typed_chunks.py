"""Batch records made a chunk at a time, for the typed lane (``schemas/typed_lane.py``).

Per record, the batcher builds a :class:`BatchRecord` from a decoded dict: the ``order_key``
(Python's hash of the record's collection and id) and, with change detection, the stable id
hash (:func:`change_filter.hash64` of :func:`change_filter.identity`). Here the same values
come from the lane's columns with no Python step per record in the common case: the hashes
are computed by ``map`` over the column and the digests unpacked at once.

Guarantee (the tests hold it): each record's ``order_key`` and ``id_hash`` equal what
``Batcher._take`` computes from the decoded record.
"""

from __future__ import annotations

from operator import itemgetter
from typing import cast

from ometria_sync.pipeline.batch import BatchRecord
from ometria_sync.pipeline.change_filter import hashes64, identity


def identities(ids: list[str], collections: list[str | None]) -> list[bytes]:
    """``identity`` of each record of ``ids`` (strings) and ``collections``."""
    if all(collections):  # ``"\x00".join``: a third of ``"{}\x00{}".format``'s time
        named = cast(list[str], collections)
        return list(map(str.encode, map("\x00".join, zip(named, ids, strict=True))))
    if not any(collections):
        return list(map(str.encode, ids))
    return [identity({"@collection": c, "id": i}) for c, i in zip(collections, ids, strict=True)]


def typed_records(encoded: list[bytes], ends: list[tuple[int, int]], ids: list[str],
                  collections: list[str | None], *, id_hashes: bool) -> list[BatchRecord]:
    """The batch records of a chunk the lane accepted: ``encoded`` records read at ``ends``
    (the position after each line, the line number second), with their ids and collections
    (None: none); ``id_hashes``: change detection is on (else 0, as ``_take`` leaves it)."""
    keys = list(map(hash, zip(collections, ids, strict=True)))
    lines = list(map(itemgetter(1), ends))
    if id_hashes:
        hashed = hashes64(identities(ids, collections))
        return list(map(BatchRecord, encoded, lines, ends, keys, hashed))
    return list(map(BatchRecord, encoded, lines, ends, keys))
