"""The checkpointer: checkpoints follow the watermark, the dead letter is durable first, and
hashes acknowledged beyond the checkpoint are written at once."""

from __future__ import annotations

from typing import Any

from ometria_sync.pipeline.batch import Batch, PartScope
from ometria_sync.pipeline.checkpointer import Checkpointer
from ometria_sync.pipeline.stats import StreamStats


class _Log:
    """Stands in for the state store, the dead letter and the hash buffer: records the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def save(self, stream: str, part: str, position: Any, fingerprint: str | None,
             delivered: int) -> None:
        self.calls.append(("save", stream, part, position, fingerprint, delivered))

    def sync(self) -> None:
        self.calls.append(("sync",))

    def write(self) -> None:
        self.calls.append(("hashes",))

    def before_checkpoint(self) -> None:
        self.calls.append(("hashes before the checkpoint",))


def _checkpointer(*, save: bool = True) -> tuple[Checkpointer, StreamStats, _Log]:
    log = _Log()
    stats = StreamStats(stream="contacts")
    scope = PartScope("contacts", "in.jsonl", stats, log)  # type: ignore[arg-type]
    checkpointer = Checkpointer(scope, log, part_key="k", fingerprint="f",  # type: ignore[arg-type]
                                save=save, hashes=log)  # type: ignore[arg-type]
    return checkpointer, stats, log


def _batch(seq: int) -> Batch:
    return Batch(seq=seq, records=[], end_position=(seq + 1) * 10)


def test_batches_settled_out_of_order_write_their_hashes_and_wait_for_the_watermark() -> None:
    """Batch 1 settles first: its hashes are written at once (a resume re-reads it), and no
    checkpoint passes batch 0; once batch 0 settles, the checkpoint covers both, saved after
    the dead letter was synced and the hashes it relies on were written."""
    checkpointer, stats, log = _checkpointer()
    checkpointer.settle(_batch(1), 4)
    assert log.calls == [("hashes",)] and stats.position is None
    checkpointer.settle(_batch(0), 3)
    assert log.calls[1:] == [("sync",), ("hashes before the checkpoint",),
                             ("save", "contacts", "k", 20, "f", 7)]
    assert stats.position == 20


def test_each_save_counts_only_the_records_newly_covered() -> None:
    checkpointer, _, log = _checkpointer()
    checkpointer.settle(_batch(0), 3)
    checkpointer.settle(_batch(1), 5)
    assert [c[-1] for c in log.calls if c[0] == "save"] == [3, 5]


def test_without_saving_only_the_live_position_moves() -> None:
    """A dry run or ``validate``: the stats show how far it got, nothing is saved or synced."""
    checkpointer, stats, log = _checkpointer(save=False)
    checkpointer.settle(_batch(0), 3)
    assert log.calls == [] and stats.position == 10
