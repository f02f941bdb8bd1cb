"""The presence rows of ``on_missing`` in both stores: a generation's census counts only ids the
change index holds (what the job delivered), missing ids page in id-hash order, closing marks
them gone until seen again, and a scratch index (a dry run) writes nothing."""

from __future__ import annotations

from ometria_sync.state import Census, presence_index
from ometria_sync.state.store import StateStore
from tests.state.conftest import Opener


def key(rid: str) -> str:
    return f'[null,"{rid}"]'


async def delivered_ten(store: StateStore) -> int:
    """Stream ``s``: ids 1..10 delivered (hashed and seen by generation 1); 11 seen, never
    delivered."""
    stream = await store.stream_id("s")
    store.remember(stream, [(i, 100 + i) for i in range(1, 11)])
    presence = presence_index(store)
    assert await presence.generation(stream) == (0, True)
    presence.mark_seen(stream, 1, [(i, key(f"p{i}")) for i in range(1, 12)])
    presence.close(stream, 1, deactivated=False)
    await store.flush()
    return stream


async def test_a_generation_finds_the_delivered_ids_it_did_not_see(store: StateStore) -> None:
    stream = await delivered_ten(store)
    presence = presence_index(store)
    assert await presence.generation(stream) == (1, True)
    presence.mark_seen(stream, 2, [(i, key(f"p{i}")) for i in (1, 2, 3, 4, 5, 6, 7, 8)])
    await store.flush()
    assert await presence.generation(stream) == (2, False)
    assert await presence.census(stream, 2) == Census(delivered=10, seen=8, missing=2)
    assert await presence.missing(stream, 2, None, 1) == [(9, key("p9"))]
    assert await presence.missing(stream, 2, 9, 5) == [(10, key("p10"))]
    assert sorted(await presence.status(stream, [9, 1])) == [(1, False, 2), (2, False, 2)]

    presence.close(stream, 2, deactivated=True)
    await store.flush()
    assert await presence.gone(stream, [8, 9, 10, 11]) == {9, 10}
    assert await presence.gone_keys(stream, None, 10) == [(9, key("p9")), (10, key("p10"))]
    assert await presence.any_gone(stream)
    presence.mark_seen(stream, 3, [(9, key("p9"))])  # p9 is back
    await store.flush()
    assert await presence.gone(stream, [9, 10]) == {10}
    assert (await presence.census(stream, 3)).delivered == 9


async def test_a_scratch_index_writes_nothing(open_store: Opener) -> None:
    store = await open_store()
    stream = await delivered_ten(store)
    scratch = presence_index(store, scratch=True)
    assert await scratch.generation(stream) == (1, True)
    scratch.mark_seen(stream, 2, [(i, key(f"p{i}")) for i in range(1, 10)])
    await store.flush()
    assert await scratch.census(stream, 2) == Census(delivered=10, seen=9, missing=1)
    assert await scratch.missing(stream, 2, None, 10) == [(10, key("p10"))]
    scratch.close(stream, 2, deactivated=True)
    scratch.mark_gone(stream, [(1, key("p1"))])
    await store.aclose()
    again = presence_index(await open_store())
    assert await again.generation(stream) == (1, True)
    assert not await again.any_gone(stream)
    assert (await again.census(stream, 2)).seen == 0
