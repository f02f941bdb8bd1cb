"""The SQLite side, synchronous: the checkpoint store is durable, monotonic, private, and loud when
broken; the change index stores what it is given, whole 64-bit range included, latest pair
winning.
"""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ometria_sync.errors import StateError
from ometria_sync.state.change_index_sql import ChangeIndex
from ometria_sync.state.sqlite_sql import SqliteCheckpointStore, migrate, open_checkpoint_store


def test_saves_and_loads_positions_and_counts_delivered(tmp_path: Path) -> None:
    store = SqliteCheckpointStore(tmp_path / "cp.db")
    store.save("contacts", "", [4480, 100], "fp1", 100)
    store.save("contacts", "", [9180, 200], "fp1", 100)
    saved = store.load("contacts", "")
    assert saved is not None
    assert (saved.position, saved.fingerprint, saved.delivered) == ([9180, 200], "fp1", 200)
    assert store.load("orders", "") is None
    store.close()


def test_survives_reopening(tmp_path: Path) -> None:
    SqliteCheckpointStore(tmp_path / "cp.db").save("s", "a.jsonl", [1, 1], None, 1)
    again = SqliteCheckpointStore(tmp_path / "cp.db")
    assert [c.part for c in again.checkpoints()] == ["a.jsonl"]


def test_never_moves_backwards_for_the_same_content(tmp_path: Path) -> None:
    store = SqliteCheckpointStore(tmp_path / "cp.db")
    store.save("s", "", [500, 10], "fp", 10)
    with pytest.raises(StateError, match="would move backwards"):
        store.save("s", "", [100, 2], "fp", 1)
    loaded = store.load("s", "")
    assert loaded is not None and loaded.position == [500, 10]


def test_a_new_file_starts_over_and_resets_the_delivered_count(tmp_path: Path) -> None:
    store = SqliteCheckpointStore(tmp_path / "cp.db")
    store.save("s", "", [500, 10], "old", 10)
    store.save("s", "", [100, 2], "new", 2)
    loaded = store.load("s", "")
    assert loaded is not None and (loaded.position, loaded.delivered) == ([100, 2], 2)


@pytest.mark.parametrize("empty", [None, [], ""])
def test_refuses_an_empty_checkpoint(tmp_path: Path, empty: object) -> None:
    store = SqliteCheckpointStore(tmp_path / "cp.db")
    store.save("s", "", [5, 1], "fp", 1)
    with pytest.raises(StateError, match="empty checkpoint"):
        store.save("s", "", empty, "fp", 0)


def test_files_are_readable_by_the_owner_only(tmp_path: Path) -> None:
    store = SqliteCheckpointStore(tmp_path / "state" / "cp.db")
    store.save("s", "", [1, 1], None, 1)
    mode = stat.S_IMODE((tmp_path / "state" / "cp.db").stat().st_mode)
    assert mode == 0o600


def test_a_corrupt_database_is_a_clear_error_not_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "cp.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError, match="damaged"):
        SqliteCheckpointStore(path)


def test_a_locked_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "cp.db"
    store = SqliteCheckpointStore(path)
    store.save("s", "", [1, 1], None, 1)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        store._db.execute("PRAGMA busy_timeout = 50")
        with pytest.raises(StateError, match="another run"):
            store.save("s", "", [2, 2], None, 1)
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_runs_and_reset(tmp_path: Path) -> None:
    store = SqliteCheckpointStore(tmp_path / "cp.db")
    store.start_run("a")
    store.save("a", "", [1, 1], None, 1)
    store.save("b", "", [1, 1], None, 1)
    store.finish_run("a", "ok", 1)
    run = store.last_run("a")
    assert run is not None and (run.outcome, run.delivered) == ("ok", 1)
    assert store.reset("a") == 1
    assert store.load("a", "") is None and store.load("b", "") is not None
    assert store.last_run("a") is None
    assert store.reset() == 1


def test_only_sqlite_urls_open(tmp_path: Path) -> None:
    assert isinstance(open_checkpoint_store(f"sqlite:///{tmp_path}/x.db"), SqliteCheckpointStore)
    with pytest.raises(StateError, match="not supported"):
        open_checkpoint_store("redis://localhost")


INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def _index() -> tuple[ChangeIndex, int]:
    db = sqlite3.connect(":memory:", isolation_level=None)
    migrate(db, Path(":memory:"))
    index = ChangeIndex(db)
    return index, index.stream_id("contacts")


@given(st.lists(st.tuples(INT64, INT64), max_size=300), st.lists(st.tuples(INT64, INT64)))
def test_remembered_pairs_are_looked_up_exactly(
    first: list[tuple[int, int]], second: list[tuple[int, int]]
) -> None:
    index, stream = _index()
    index.remember(stream, first)
    index.remember(stream, second)
    expected = dict(first) | dict(second)  # a later pair for the same id replaces the earlier
    assert index.lookup(stream, list(expected)) == expected


def test_streams_keep_their_own_hashes() -> None:
    index, contacts = _index()
    orders = index.stream_id("orders")
    index.remember(contacts, [(-(2**63), 2**63 - 1)])
    index.remember(orders, [(-(2**63), 5)])
    assert index.lookup(contacts, [-(2**63)]) == {-(2**63): 2**63 - 1}
    assert index.lookup(orders, [-(2**63), 7]) == {-(2**63): 5}
    assert index.count("contacts") == 1
