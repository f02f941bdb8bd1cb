"""A stream found empty is looked up only for the ids the store wrote since (``written_ids.py``):
a first run's lookups skipped, and every answer still the index's own."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ometria_sync.state.written_ids import WrittenIds
from tests.state.conftest import Opener

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


async def test_a_stream_found_empty_asks_only_about_ids_this_store_wrote(
        open_store: Opener) -> None:
    """A hash written behind the store's back (another store on the same state: what the run
    lock rules out) is not seen, which shows the index was not asked; the store's own are."""
    mine = await open_store()
    stream = await mine.stream_id("contacts")
    other = await open_store()
    assert await other.stream_id("contacts") == stream
    other.remember(stream, [(5, 50)])
    await other.flush()
    mine.remember(stream, [(7, 70), (-(2**63), 2**63 - 1)])
    await mine.flush()
    assert await mine.lookup(stream, [5, 7, -(2**63), 9]) == {7: 70, -(2**63): 2**63 - 1}


async def test_a_stream_that_held_hashes_when_named_is_looked_up_in_full(
        open_store: Opener) -> None:
    other = await open_store()
    stream = await other.stream_id("contacts")
    other.remember(stream, [(5, 50)])
    await other.flush()
    mine = await open_store()
    assert await mine.stream_id("contacts") == stream
    other.remember(stream, [(6, 60)])
    await other.flush()
    assert await mine.lookup(stream, [5, 6, 7]) == {5: 50, 6: 60}


async def test_a_forgotten_and_rewritten_id_is_found_as_last_written(open_store: Opener) -> None:
    """Within one run: written, forgotten (an unknown outcome), written again."""
    store = await open_store()
    stream = await store.stream_id("contacts")
    store.remember(stream, [(7, 70)])
    await store.flush()
    assert await store.lookup(stream, [7]) == {7: 70}
    store.forget_ids(stream, [7])
    await store.flush()
    assert await store.lookup(stream, [7]) == {}
    store.remember(stream, [(7, 71), (8, 80)])
    await store.flush()
    assert await store.lookup(stream, [7, 8]) == {7: 71, 8: 80}


@given(st.lists(INT64, max_size=200), st.lists(INT64, max_size=200))
def test_no_id_written_is_ever_left_out(written: list[int], asked: list[int]) -> None:
    ids = WrittenIds()
    ids.named(1, empty=True)
    ids.named(2, empty=False)
    ids.written(1, [(h, 0) for h in written])
    # written before it was named: looked up in full from then on
    ids.written(3, [(h, 0) for h in written])
    ids.named(3, empty=True)
    maybe = ids.may_hold(1, asked + written)
    assert set(written) <= set(maybe) <= set(asked + written)
    assert ids.may_hold(2, asked) == asked
    assert ids.may_hold(3, asked) == asked
    assert ids.may_hold(4, asked) == asked  # never named


def test_a_new_stream_asks_about_nothing_until_written() -> None:
    ids = WrittenIds()
    ids.named(1, empty=True)
    assert ids.may_hold(1, list(range(-500, 500))) == []
    ids.written(1, [(3, 0)])
    assert 3 in ids.may_hold(1, list(range(-500, 500)))


@given(st.lists(INT64, max_size=200), st.lists(INT64, max_size=200))
def test_with_a_second_bitmap_no_id_written_is_ever_left_out(written: list[int],
                                                             asked: list[int]) -> None:
    ids = WrittenIds(second_bits=1 << 10)
    ids.named(1, empty=True)
    ids.written(1, [(h, 0) for h in written[::2]])
    ids.new_written(1, written[1::2])
    maybe = ids.may_hold(1, asked + written)
    assert set(written) <= set(maybe) <= set(asked + written)


@given(st.lists(INT64, max_size=200), st.lists(INT64, max_size=200),
       st.sampled_from([0, 1 << 10]))
def test_an_id_is_new_only_if_never_written_before(before: list[int], now: list[int],
                                                   second_bits: int) -> None:
    """New: a plain insert of it finds no row (``pg_state.py`` copies it in)."""
    ids = WrittenIds(second_bits)
    ids.named(1, empty=True)
    ids.written(1, [(h, 0) for h in before])
    new = ids.new_written(1, now)
    for i, (h, is_new) in enumerate(zip(now, new, strict=True)):
        assert not (is_new and (h in before or h in now[:i]))
    assert ids.new_written(2, now) == [False] * len(now)  # never named: looked up in full


def test_a_second_bitmap_lets_through_fewer_ids_than_one() -> None:
    one, two = WrittenIds(), WrittenIds(second_bits=1 << 24)
    written = [(h * 0x9E3779B97F4A7C15) % (1 << 64) - (1 << 63) for h in range(200_000)]
    asked = [(h * 0xC2B2AE3D27D4EB4F) % (1 << 64) - (1 << 63) for h in range(100_000)]
    for ids in (one, two):
        ids.named(1, empty=True)
        ids.written(1, [(h, 0) for h in written])
    assert len(two.may_hold(1, asked)) < len(one.may_hold(1, asked)) / 5
    assert set(two.may_hold(1, written)) == set(written)
