"""Groups to keep wait for a hash write to point them, but not for ever: an unchanged night
writes none, and its groups (every record of the file) must not pile up in memory."""

from __future__ import annotations

from typing import Any, cast

from ometria_sync.pipeline.batch import BatchRecord
from ometria_sync.pipeline.change_filter import ChangeFilter
from ometria_sync.pipeline.line_groups import MAX_KEEP_WAITING, GroupedPart, LineGroups, _Open
from ometria_sync.sources import SourceItem
from ometria_sync.state import StateStore


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
