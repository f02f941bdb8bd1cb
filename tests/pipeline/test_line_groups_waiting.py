"""Groups to keep wait for a hash write to point them, but not for ever: an unchanged night
writes none, and its groups (every record of the file) must not pile up in memory."""

from __future__ import annotations

from typing import Any, cast

from ometria_sync.pipeline.batch import BatchRecord
from ometria_sync.pipeline.change_filter import ChangeFilter
from ometria_sync.pipeline.line_groups import (
    MAX_KEEP_WAITING,
    MAX_SEEN_WAITING,
    GroupedPart,
    LineGroups,
    _Open,
)
from ometria_sync.sources import LineGroup, SourceItem
from ometria_sync.state import StateStore
from ometria_sync.state.store import group_weight


class _State:
    def __init__(self) -> None:
        self.kept: list[int] = []

    def keep_groups(self, stream_id: int, marker: int, groups: list[Any], seen: list[int],
                    pointed: Any = ()) -> None:
        self.kept.append(len(groups))


def _unchanged_group(lines: LineGroups, tag: int) -> None:
    """A decoded group of one record, found unchanged (so no hash is written for it)."""
    lines._open[tag] = _Open(hash=tag, items=1)
    item = SourceItem(record={"id": str(tag)}, position=(tag, tag), group=tag)
    lines.took(item, BatchRecord(b"{}", tag, (tag, tag), id_hash=tag, content_hash=-tag), False)


def test_groups_to_keep_are_written_once_enough_wait_without_a_hash_write() -> None:
    state = _State()
    changes = ChangeFilter(cast(StateStore, state), stream_id=1)
    lines = LineGroups(cast(StateStore, state), changes, cast(GroupedPart, None), b"")
    for tag in range(1, MAX_KEEP_WAITING):
        _unchanged_group(lines, tag)
    assert state.kept == []  # waiting for a hash write that may point them
    _unchanged_group(lines, MAX_KEEP_WAITING)
    assert state.kept == [MAX_KEEP_WAITING]
    assert lines._keep == []


class _HoldingState(_State):
    """Holds every group it is asked about, and records the waits for its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[int] = []
        self.waits = 0

    async def catch_up(self) -> None:
        self.waits += 1

    async def held_groups(self, stream_id: int, hashes: list[int]) -> dict[int, list[int]]:
        return {h: [h] for h in hashes}

    def keep_groups(self, stream_id: int, marker: int, groups: list[Any], seen: list[int],
                    pointed: Any = ()) -> None:
        super().keep_groups(stream_id, marker, groups, seen, pointed)
        self.seen += seen


class _SkippingPart:
    def skip(self, group: LineGroup) -> bool:
        return True


async def test_an_unchanged_night_writes_its_skipped_groups_as_it_goes_and_waits_for_them(
) -> None:
    """Every group skipped: their marks go to the state in bounded writes (not all at the
    end), and each read waits for the state's queue first (nothing else on such a night does,
    so the writes' queue would grow instead of the reader waiting)."""
    state = _HoldingState()
    changes = ChangeFilter(cast(StateStore, state), stream_id=1)
    lines = LineGroups(cast(StateStore, state), changes, cast(GroupedPart, _SkippingPart()),
                       b"")
    reads = 3 * MAX_SEEN_WAITING // 100 + 1
    for read in range(reads):
        groups = [LineGroup([f"line {read} {n}".encode()], (0, 0), (read * 100 + n, 0))
                  for n in range(100)]
        items = await lines.items(groups)
        assert [i.unchanged for i in items] == [1] * 100
    assert state.waits == reads
    assert len(state.seen) >= 3 * MAX_SEEN_WAITING - 100  # written on the way
    assert len(lines._seen) < MAX_SEEN_WAITING
    lines.flush()
    assert len(state.seen) == reads * 100 and lines.skipped == reads * 100


def test_a_write_of_groups_weighs_its_ids() -> None:
    """What keep_up bounds: a group write counts its ids like the change hashes they stand
    for, and each group seen."""
    groups = [(1, [10, 11, 12], [0, 0, 0]), (2, [13], [0])]
    assert group_weight(groups, [5, 6], [(3, [14, 15])]) == 4 + 2 + 2
