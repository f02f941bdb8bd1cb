"""Both state stores keep the same promises: checkpoints that never move backwards, change
hashes looked up exactly, the account, dead letters, the run lock, writes in order."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ometria_sync.errors import StateError
from ometria_sync.state.store import AccountIdentity, AccountMismatch, StateStore
from tests.state.conftest import Opener

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
STAGING = AccountIdentity.of("https://api.ometria.com/v2", "staging-key-1b2c")
LIVE = AccountIdentity.of("https://api.ometria.com/v2", "live-key-9a8b")


async def test_saves_and_loads_positions_and_counts_delivered(store: StateStore) -> None:
    store.save("contacts", "", [4480, 100], "fp1", 100)
    store.save("contacts", "", [9180, 200], "fp1", 100)
    saved = await store.load("contacts", "")
    assert saved is not None
    assert (saved.position, saved.fingerprint, saved.delivered) == ([9180, 200], "fp1", 200)
    assert await store.load("orders", "") is None


async def test_survives_reopening(open_store: Opener) -> None:
    first = await open_store()
    first.save("s", "a.jsonl", [1, 1], None, 1)
    await first.aclose()
    again = await open_store()
    assert [c.part for c in await again.checkpoints()] == ["a.jsonl"]


async def test_never_moves_backwards_for_the_same_content(open_store: Opener) -> None:
    store = await open_store()
    store.save("s", "", [500, 10], "fp", 10)
    store.save("s", "", [100, 2], "fp", 1)
    with pytest.raises(StateError, match="would move backwards"):
        await store.flush()
    loaded = await (await open_store()).load("s", "")  # this run's queue stopped at the failure
    assert loaded is not None and loaded.position == [500, 10]


async def test_a_new_file_starts_over_and_resets_the_delivered_count(store: StateStore) -> None:
    store.save("s", "", [500, 10], "old", 10)
    store.save("s", "", [100, 2], "new", 2)
    loaded = await store.load("s", "")
    assert loaded is not None and (loaded.position, loaded.delivered) == ([100, 2], 2)


@pytest.mark.parametrize("empty", [None, [], ""])
async def test_refuses_an_empty_checkpoint(store: StateStore, empty: object) -> None:
    store.save("s", "", [5, 1], "fp", 1)
    store.save("s", "", empty, "fp", 0)
    with pytest.raises(StateError, match="empty checkpoint"):
        await store.flush()
    await store.flush()  # raised once


async def test_writes_run_in_the_order_submitted(store: StateStore) -> None:
    for n in range(1, 201):
        store.save("s", "a.jsonl", [n * 10, n], "fp", 1)
    await store.keep_up(most=10)
    saved = await store.load("s", "a.jsonl")
    assert saved is not None and saved.position == [2000, 200] and saved.delivered == 200


async def test_runs_and_reset(store: StateStore) -> None:
    await store.start_run("a")
    store.save("a", "", [1, 1], None, 1)
    store.save("b", "", [1, 1], None, 1)
    await store.finish_run("a", "ok", 1)
    run = await store.last_run("a")
    assert run is not None and (run.outcome, run.delivered) == ("ok", 1)
    assert await store.reset("a") == 1
    assert await store.load("a", "") is None and await store.load("b", "") is not None
    assert await store.last_run("a") is None
    assert await store.reset() == 1


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(INT64, INT64), max_size=300, unique_by=lambda p: p[0]),
       st.lists(st.tuples(INT64, INT64), max_size=300, unique_by=lambda p: p[0]))
async def test_remembered_pairs_are_looked_up_exactly(
    store: StateStore, first: list[tuple[int, int]], second: list[tuple[int, int]]
) -> None:
    stream = await store.stream_id("contacts")
    await store.reset()
    store.remember(stream, first)
    pending = store.remember(stream, second)
    await store.flush()
    assert pending.done() and pending.exception() is None
    expected = dict(first) | dict(second)  # a later pair for the same id replaces the earlier
    assert await store.lookup(stream, list(expected)) == expected


async def test_streams_keep_their_own_hashes_and_forget_ids(store: StateStore) -> None:
    contacts = await store.stream_id("contacts")
    orders = await store.stream_id("orders")
    assert await store.stream_id("contacts") == contacts != orders
    store.remember(contacts, [(-(2**63), 2**63 - 1), (1, 10), (2, 20)])
    store.remember(orders, [(-(2**63), 5)])
    store.forget_ids(contacts, [1, 99])
    await store.flush()
    assert await store.lookup(contacts, [-(2**63), 1, 2]) == {-(2**63): 2**63 - 1, 2: 20}
    assert await store.lookup(orders, [-(2**63), 7]) == {-(2**63): 5}
    assert await store.tracked_ids("contacts") == 2
    await store.reset("contacts")
    assert await store.tracked_ids("contacts") == 0 and await store.tracked_ids("orders") == 1


async def test_the_account_is_recorded_compared_and_forgotten_by_a_full_reset(
        open_store: Opener) -> None:
    store = await open_store()
    assert await store.claim_account(STAGING) is True
    assert await store.claim_account(STAGING) is False
    with pytest.raises(AccountMismatch) as caught:
        await store.claim_account(LIVE)
    assert STAGING.describe() in str(caught.value) and LIVE.describe() in str(caught.value)
    store = await open_store()  # a refusal stops the run that met it: the next one goes on
    await store.reset("contacts")
    with pytest.raises(AccountMismatch):
        await store.claim_account(LIVE)
    store = await open_store()
    await store.reset()
    assert await store.claim_account(LIVE) is True


async def test_dead_letters_are_kept_filtered_and_reset(store: StateStore) -> None:
    store.add_dead_letters([("run1", "contacts", "t1", '{"stream":"contacts","line":1}'),
                            ("run1", "orders", "t1", '{"stream":"orders","line":2}')])
    store.add_dead_letters([("run2", "contacts", "t2", '{"stream":"contacts","line":3}')])
    await store.flush()
    every = [e async for e in store.dead_letters()]
    assert every == [b'{"stream":"contacts","line":1}', b'{"stream":"orders","line":2}',
                     b'{"stream":"contacts","line":3}']
    assert [e async for e in store.dead_letters("contacts", "run2")] == [every[2]]
    assert [e async for e in store.dead_letters(run_id="run1")] == every[:2]
    await store.reset("contacts")
    assert [e async for e in store.dead_letters()] == [every[1]]


async def test_a_second_run_lock_is_refused_while_the_first_is_held(
        open_store: Opener) -> None:
    first, second = await open_store(), await open_store()
    assert await second.run_in_progress() is False
    async with first.run_lock():
        assert await second.run_in_progress() is True
        with pytest.raises(StateError, match="another run of this job is in progress"):
            async with second.run_lock():
                pass
    assert await second.run_in_progress() is False
    async with second.run_lock():
        pass


async def test_a_failed_write_is_raised_once_and_nothing_after_it_is_lost(
        open_store: Opener) -> None:
    store = await open_store()
    store.save("s", "", [5, 1], "fp", 1)
    store.save("s", "", [1, 1], "fp", 1)  # backwards: a bug, refused
    with pytest.raises(StateError):
        await store.keep_up(most=0)
    await store.flush()
    loaded = await (await open_store()).load("s", "")
    assert loaded is not None and loaded.position == [5, 1]
