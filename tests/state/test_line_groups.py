"""Groups of lines Ometria holds as they are (``state/line_groups_sql.py``), both stores: a
group is held only while every record in it is the version the change index holds."""

from __future__ import annotations

from ometria_sync.state.store import StateStore

GROUP = (77, [1, 2, 3], [10, 20, 30])


async def _kept(store: StateStore) -> int:
    stream = await store.stream_id("contacts")
    store.remember(stream, [(1, 10), (2, 20), (3, 30), (4, 40)])
    store.keep_groups(stream, 5, [GROUP], [])
    await store.flush()
    return stream


async def test_a_group_whose_records_are_stored_is_held_with_its_ids(store: StateStore) -> None:
    """Kept once its records' stored hashes are its own; read back with its ids."""
    stream = await _kept(store)
    held = await store.held_groups(stream, [77, 78])
    assert {g: list(ids) for g, ids in held.items()} == {77: [1, 2, 3]}


async def test_a_record_stored_in_another_version_lets_its_group_go(store: StateStore) -> None:
    """A -> B: the group holding A is gone as the hash of B is written (A -> B -> A sends A)."""
    stream = await _kept(store)
    store.remember(stream, [(2, 21)])
    await store.flush()
    assert await store.held_groups(stream, [77]) == {}


async def test_a_forgotten_record_lets_its_group_go(store: StateStore) -> None:
    """A hash forgotten after an unclear answer: no group holding it is skipped."""
    stream = await _kept(store)
    store.forget_ids(stream, [3])
    await store.flush()
    assert await store.held_groups(stream, [77]) == {}


async def test_a_group_whose_content_moved_on_is_not_kept(store: StateStore) -> None:
    """Its record's stored hash is another version's by the time it is written: not kept,
    and another group written with it is."""
    stream = await store.stream_id("contacts")
    store.remember(stream, [(1, 10), (2, 99), (3, 30), (4, 40)])
    store.keep_groups(stream, 5, [GROUP, (88, [4], [40])], [])
    await store.flush()
    assert set(await store.held_groups(stream, [77, 88])) == {88}


async def test_groups_the_last_run_did_not_see_are_pruned(store: StateStore) -> None:
    """Run 5 kept 77; run 6 saw 88 only and read the stream whole: 77 is pruned."""
    stream = await _kept(store)
    store.keep_groups(stream, 5, [(88, [4], [40])], [])
    store.keep_groups(stream, 6, [], [88])
    store.prune_groups(stream, 6)
    await store.flush()
    assert set(await store.held_groups(stream, [77, 88])) == {88}


async def test_a_reset_forgets_the_groups(store: StateStore) -> None:
    stream = await _kept(store)
    await store.reset("contacts")
    assert await store.held_groups(stream, [77]) == {}
