"""What flows from the batcher to the dispatchers: records ready to send and the batches of them.

A batch's ``end_position`` is the source position after the last item consumed for it (its
dead-lettered and unchanged items included), so once the batch settles every item before that
position is settled too: the watermark checkpoints it.
"""

from __future__ import annotations

import msgspec

from ometria_sync.sources.base import Position


class BatchRecord(msgspec.Struct, gc=False):
    """A valid record ready to send: its encoding, what names it in a dead letter, its
    ``order_key`` (the id within this process: keeps versions of one id in order) and, with
    change detection, the stable hashes of its id and content (0 without).

    Only bytes and numbers: the decoded record is dropped once encoded, so the thousands of
    records queued and in flight are nothing for the garbage collector to walk (holding the
    dicts made full collections take tens of milliseconds, and the pacer missed slots)."""

    encoded: bytes
    line: int | None
    position: Position
    order_key: int = 0
    id_hash: int = 0
    content_hash: int = 0
    #: a change hash may be stored for its id (found by the lookup, an earlier version sent by
    #: this run, or a full refresh, which looks nothing up): once acknowledged, its hash is
    #: written before a checkpoint passes it (``acked_hashes.py``)
    replaces: bool = False


class Batch(msgspec.Struct):
    """Up to ``batch_size`` records of one type, numbered in the order they were cut."""

    seq: int
    records: list[BatchRecord]
    #: after the last source item consumed for it (None: none consumed yet)
    end_position: Position | None


def encode_body(records: list[BatchRecord]) -> bytes:
    """The JSON array Ometria's push endpoint takes, joined from already-encoded records."""
    return b"[" + b",".join(r.encoded for r in records) + b"]"
