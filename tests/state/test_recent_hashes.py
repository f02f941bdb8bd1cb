"""The change index's side table (``state/change_index_sql.py``): hashes written to
``recent_hashes`` and merged into ``record_hashes`` in bulk are read as one index, the newer row
winning, by every reader; a merge moves each hash once, in one transaction."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ometria_sync.errors import StateError
from ometria_sync.state import open_state
from ometria_sync.state.presence import presence_index
from ometria_sync.state.sqlite_sql import SqliteCheckpointStore


def _rows(store: SqliteCheckpointStore, table: str) -> int:
    return int(store.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[SqliteCheckpointStore, SqliteCheckpointStore]]:
    """The writer and a second connection, as the state thread and the event loop's reader."""
    writer = SqliteCheckpointStore(tmp_path / "cp.db")
    reader = SqliteCheckpointStore(tmp_path / "cp.db")
    yield writer, reader
    reader.close()
    writer.close()


def test_every_reader_sees_hashes_not_merged_yet(
    stores: tuple[SqliteCheckpointStore, SqliteCheckpointStore]
) -> None:
    writer, reader = stores
    stream = writer.changes.stream_id("contacts")
    assert not reader.changes.holds_any(stream)
    writer.changes.remember(stream, [(1, 10), (2, 20)])
    assert (_rows(writer, "recent_hashes"), _rows(writer, "record_hashes")) == (2, 0)
    assert reader.changes.holds_any(stream)
    assert reader.changes.lookup(stream, [1, 2, 3]) == {1: 10, 2: 20}
    assert reader.changes.count("contacts") == 2


def test_the_newer_row_wins_and_is_counted_once(
    stores: tuple[SqliteCheckpointStore, SqliteCheckpointStore]
) -> None:
    """A -> B, A merged and B not yet: B is the reference; A -> B -> A is judged changed."""
    writer, reader = stores
    stream = writer.changes.stream_id("contacts")
    writer.changes.remember(stream, [(1, 10), (2, 20)])
    writer.changes.merge()
    writer.changes.remember(stream, [(1, 11), (3, 30)])
    assert reader.changes.lookup(stream, [1, 2, 3]) == {1: 11, 2: 20, 3: 30}
    assert reader.changes.count("contacts") == 3


def test_a_forgotten_id_leaves_no_older_hash_behind(
    stores: tuple[SqliteCheckpointStore, SqliteCheckpointStore]
) -> None:
    """Its hashes in both tables go: the merged older one must not become the reference."""
    writer, reader = stores
    stream = writer.changes.stream_id("contacts")
    writer.changes.remember(stream, [(1, 10), (2, 20)])
    writer.changes.merge()
    writer.changes.remember(stream, [(1, 11)])
    writer.changes.forget_ids(stream, [1])
    assert reader.changes.lookup(stream, [1, 2]) == {2: 20}
    writer.changes.merge()
    assert reader.changes.lookup(stream, [1, 2]) == {2: 20}


def test_a_reset_forgets_both_tables(
    stores: tuple[SqliteCheckpointStore, SqliteCheckpointStore]
) -> None:
    writer, reader = stores
    stream = writer.changes.stream_id("contacts")
    writer.changes.remember(stream, [(1, 10)])
    writer.changes.merge()
    writer.changes.remember(stream, [(2, 20)])
    writer.reset("contacts")
    assert reader.changes.lookup(stream, [1, 2]) == {}
    assert not reader.changes.holds_any(stream)


def test_writes_past_the_threshold_and_a_close_merge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ometria_sync.state.change_index_sql.MERGE_AT", 3)
    store = SqliteCheckpointStore(tmp_path / "cp.db")
    stream = store.changes.stream_id("contacts")
    store.changes.remember(stream, [(1, 10), (2, 20)])
    assert _rows(store, "recent_hashes") == 2
    store.changes.remember(stream, [(3, 30)])  # three written: merged
    assert (_rows(store, "recent_hashes"), _rows(store, "record_hashes")) == (0, 3)
    store.changes.remember(stream, [(1, 12)])
    store.close()
    again = SqliteCheckpointStore(tmp_path / "cp.db")
    try:
        assert (_rows(again, "recent_hashes"), _rows(again, "record_hashes")) == (0, 3)
        assert again.changes.lookup(stream, [1, 2, 3]) == {1: 12, 2: 20, 3: 30}
    finally:
        again.close()


def test_a_merge_is_one_transaction(
    stores: tuple[SqliteCheckpointStore, SqliteCheckpointStore]
) -> None:
    """A merge that fails half-way moved nothing: every hash is still read, none twice."""
    writer, reader = stores
    stream = writer.changes.stream_id("contacts")
    writer.changes.remember(stream, [(1, 10)])
    writer.changes.merge()
    writer.changes.remember(stream, [(1, 11), (2, 20), (3, 30)])
    writer.db.execute("CREATE TEMP TRIGGER stop BEFORE DELETE ON recent_hashes "
                      "WHEN OLD.id_hash = 3 BEGIN SELECT RAISE(ABORT, 'disk gone'); END")
    with pytest.raises(StateError, match="disk gone"):
        writer.changes.merge()
    assert (_rows(writer, "recent_hashes"), _rows(writer, "record_hashes")) == (3, 1)
    assert reader.changes.lookup(stream, [1, 2, 3]) == {1: 11, 2: 20, 3: 30}
    writer.db.execute("DROP TRIGGER stop")
    writer.changes.merge()
    assert reader.changes.lookup(stream, [1, 2, 3]) == {1: 11, 2: 20, 3: 30}


IDS = st.integers(min_value=0, max_value=20)
STEPS = st.lists(st.one_of(
    st.tuples(st.just("remember"), st.lists(st.tuples(IDS, st.integers(0, 3)), max_size=6)),
    st.tuples(st.just("forget"), st.lists(IDS, max_size=4)),
    st.tuples(st.just("merge"), st.just([])),
), max_size=30)


@settings(max_examples=60, deadline=None)
@given(STEPS)
def test_any_mix_of_writes_and_merges_reads_as_one_index(
    steps: list[tuple[str, list[object]]]
) -> None:
    """Against a dict: after every step each id reads its last written hash (none once
    forgotten), counted once; a merge loses and doubles nothing."""
    with tempfile.TemporaryDirectory() as folder:
        store = SqliteCheckpointStore(Path(folder) / "cp.db")
        try:
            stream = store.changes.stream_id("contacts")
            model: dict[int, int] = {}
            for kind, args in steps:
                if kind == "remember":
                    pairs = [(int(i), int(c)) for i, c in args]  # type: ignore[misc]
                    store.changes.remember(stream, pairs)
                    model.update(pairs)
                elif kind == "forget":
                    ids = [int(i) for i in args]  # type: ignore[call-overload]
                    store.changes.forget_ids(stream, ids)
                    for i in ids:
                        model.pop(i, None)
                else:
                    store.changes.merge()
                    assert _rows(store, "recent_hashes") == 0
                    assert _rows(store, "record_hashes") == len(model)
                assert store.changes.lookup(stream, list(range(21))) == model
                assert store.changes.count("contacts") == len(model)
                assert store.changes.holds_any(stream) == bool(model)
        finally:
            store.close()


async def test_presence_counts_hashes_not_merged_yet_as_delivered(tmp_path: Path) -> None:
    """``on_missing``: an id delivered and not merged yet is delivered; missing when unseen."""
    state = await open_state(f"sqlite:///{tmp_path / 'cp.db'}")
    try:
        stream = await state.stream_id("contacts")
        presence = presence_index(state)
        await presence.generation(stream)
        presence.mark_seen(stream, 1, [(1, '[null,"a"]'), (2, '[null,"b"]')])
        state.remember(stream, [(1, 10), (2, 20)])
        presence.mark_seen(stream, 2, [(1, '[null,"a"]')])
        census = await presence.census(stream, 2)
        assert (census.delivered, census.missing) == (2, 1)
        assert await presence.missing(stream, 2, None, 10) == [(2, '[null,"b"]')]
    finally:
        await state.aclose()


def _held(store: SqliteCheckpointStore, stream: int) -> list[int]:
    return sorted(store.changes.groups.held(stream, [77, 88]))


def test_a_group_kept_on_recent_rows_survives_their_merge(
    stores: tuple[SqliteCheckpointStore, SqliteCheckpointStore]
) -> None:
    writer, reader = stores
    stream = writer.changes.stream_id("contacts")
    writer.changes.remember(stream, [(1, 10), (2, 20)])
    writer.changes.groups.keep(stream, 5, [(77, [1, 2], [10, 20])], [])
    assert _held(reader, stream) == [77]
    writer.changes.merge()
    assert _held(reader, stream) == [77]


def test_a_newer_recent_row_lets_the_merged_rows_group_go(
    stores: tuple[SqliteCheckpointStore, SqliteCheckpointStore]
) -> None:
    """A (merged, in group 77) -> B (not merged): 77 is gone at once, and stays gone."""
    writer, reader = stores
    stream = writer.changes.stream_id("contacts")
    writer.changes.remember(stream, [(1, 10), (2, 20)])
    writer.changes.groups.keep(stream, 5, [(77, [1, 2], [10, 20])], [])
    writer.changes.merge()
    writer.changes.remember(stream, [(2, 21)])
    assert _held(reader, stream) == []
    writer.changes.merge()
    assert _held(reader, stream) == []


def test_a_group_is_not_kept_on_a_merged_row_a_newer_one_hides(
    stores: tuple[SqliteCheckpointStore, SqliteCheckpointStore]
) -> None:
    """The merged row holds A, the recent one B: a group of A is not true, one of B is."""
    writer, reader = stores
    stream = writer.changes.stream_id("contacts")
    writer.changes.remember(stream, [(1, 10), (2, 20)])
    writer.changes.merge()
    writer.changes.remember(stream, [(2, 21)])
    writer.changes.groups.keep(stream, 5, [(77, [1, 2], [10, 20]), (88, [1, 2], [10, 21])], [])
    assert _held(reader, stream) == [88]
    writer.changes.merge()
    assert _held(reader, stream) == [88]


def test_a_forgotten_recent_row_lets_its_group_go(
    stores: tuple[SqliteCheckpointStore, SqliteCheckpointStore]
) -> None:
    writer, reader = stores
    stream = writer.changes.stream_id("contacts")
    writer.changes.remember(stream, [(1, 10)])
    writer.changes.merge()
    writer.changes.remember(stream, [(2, 20)])
    writer.changes.groups.keep(stream, 5, [(77, [1, 2], [10, 20])], [])
    assert _held(reader, stream) == [77]
    writer.changes.forget_ids(stream, [2])
    assert _held(reader, stream) == []


class _Recording:
    """A connection's ``execute``, noting each statement text."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.texts: set[str] = set()

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        self.texts.add(sql)
        return self.db.execute(sql, params)


def test_lookups_of_any_length_answer_exactly_and_share_a_few_statements(
    stores: tuple[SqliteCheckpointStore, SqliteCheckpointStore]
) -> None:
    """Every count of ids answers the stored ones, merged or not, and nothing else; and all
    counts share a handful of statement texts: one text per count filled the connection's
    statement cache with prepared statements (13 MB of SQLite memory by a million ids)."""
    writer, reader = stores
    stream = writer.changes.stream_id("contacts")
    writer.changes.remember(stream, [(i, i * 10) for i in range(0, 1200, 2)])
    writer.changes.merge()
    writer.changes.remember(stream, [(i, i * 10 + 1) for i in range(1, 1200, 4)])
    recording = _Recording(reader.db)
    reader.changes._db = recording  # type: ignore[assignment]
    for n in range(1, 1101, 3):
        ids = list(range(n, 0, -1))
        expected = {i: i * 10 for i in ids if i % 2 == 0} | {
            i: i * 10 + 1 for i in ids if i % 4 == 1}
        assert reader.changes.lookup(stream, ids) == expected
    assert 1 < len(recording.texts) <= 10
