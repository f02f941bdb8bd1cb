"""State is keyed by the job: two jobs in one store (one SQLite file, one PostgreSQL schema) keep
their own checkpoints, run history, change hashes, dead letters, account and run lock, even for
streams of the same name."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from ometria_sync.errors import StateError
from ometria_sync.state import open_state
from ometria_sync.state.store import AccountIdentity, StateStore
from tests.pg import DSN

JobOpener = Callable[..., Awaitable[StateStore]]
STAGING = AccountIdentity.of("https://api.ometria.com/v2", "staging-key-1b2c")
LIVE = AccountIdentity.of("https://api.ometria.com/v2", "live-key-9a8b")


@pytest.fixture(params=["sqlite", "postgres"])
async def open_job(
    request: pytest.FixtureRequest, tmp_path: Path, pg_schema: str
) -> AsyncIterator[JobOpener]:
    """Opens the one store this test owns as the job named ``job``."""
    opened: list[StateStore] = []

    async def opener(job: str, streams: tuple[str, ...] = ("contacts",)) -> StateStore:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'state' / 'cp.db'}"
            store = await open_state(url, job=job, streams=streams)
        else:
            store = await open_state(DSN, pg_schema, job=job, streams=streams)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        with contextlib.suppress(Exception):
            await store.aclose()


async def test_two_jobs_keep_their_own_checkpoints_runs_and_hashes(open_job: JobOpener) -> None:
    a, b = await open_job("nightly-a"), await open_job("nightly-b")
    a.save("contacts", "", [100, 10], "fp-a", 10)
    await a.start_run("contacts")
    await a.finish_run("contacts", "ok", 10)
    a.remember(await a.stream_id("contacts"), [(1, 11), (2, 22)])
    await a.flush()
    assert await b.load("contacts", "") is None
    assert await b.checkpoints() == [] and await b.last_run("contacts") is None
    assert await b.tracked_ids("contacts") == 0
    assert await b.lookup(await b.stream_id("contacts"), [1, 2]) == {}
    b.save("contacts", "", [7, 1], "fp-b", 1)
    await b.flush()
    mine = await a.load("contacts", "")
    assert mine is not None and (mine.position, mine.delivered) == ([100, 10], 10)
    assert await a.tracked_ids("contacts") == 2
    assert await b.reset() == 1
    assert await a.load("contacts", "") is not None and await a.tracked_ids("contacts") == 2
    run = await a.last_run("contacts")
    assert run is not None and run.outcome == "ok"


async def test_two_jobs_keep_their_own_dead_letters_and_accounts(open_job: JobOpener) -> None:
    a, b = await open_job("nightly-a"), await open_job("nightly-b")
    a.add_dead_letters([("r1", "contacts", "t", '{"job":"a"}')])
    b.add_dead_letters([("r2", "contacts", "t", '{"job":"b"}')])
    await a.flush()
    await b.flush()
    assert [e async for e in a.dead_letters("contacts")] == [b'{"job":"a"}']
    assert [e async for e in b.dead_letters()] == [b'{"job":"b"}']
    assert await a.claim_account(STAGING) is True
    assert await b.claim_account(LIVE) is True  # another job may sync another account
    await b.reset()
    assert [e async for e in a.dead_letters()] == [b'{"job":"a"}']
    assert await a.claim_account(STAGING) is False


async def test_each_job_has_its_own_run_lock(open_job: JobOpener) -> None:
    a, b, a_again = await open_job("nightly-a"), await open_job("nightly-b"), await open_job(
        "nightly-a")
    async with a.run_lock():
        assert await b.run_in_progress() is False
        assert await a_again.run_in_progress() is True
        async with b.run_lock():
            assert await a_again.run_in_progress() is True
        with pytest.raises(StateError, match="another run of this job is in progress"):
            async with a_again.run_lock():
                pass
