"""The change index stores what it is given, whole 64-bit range included, latest pair winning."""

from __future__ import annotations

import sqlite3

from hypothesis import given
from hypothesis import strategies as st

from ometria_sync.state.sqlite_sql import ChangeIndex

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def _index() -> tuple[ChangeIndex, int]:
    index = ChangeIndex(sqlite3.connect(":memory:", isolation_level=None))
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
