"""Every state test runs against both stores: a SQLite file and a PostgreSQL schema."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from ometria_sync.state import open_state
from ometria_sync.state.store import StateStore
from tests.pg import DSN

Opener = Callable[[], Awaitable[StateStore]]


@pytest.fixture(params=["sqlite", "postgres"])
async def open_store(
    request: pytest.FixtureRequest, tmp_path: Path, pg_schema: str
) -> AsyncIterator[Opener]:
    """Opens (again and again) the one state this test owns; closes what it opened."""
    opened: list[StateStore] = []

    async def opener() -> StateStore:
        if request.param == "sqlite":
            store = await open_state(f"sqlite:///{tmp_path / 'state' / 'cp.db'}")
        else:
            store = await open_state(DSN, pg_schema)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        with contextlib.suppress(Exception):  # a test that provoked a failure saw it already
            await store.aclose()


@pytest.fixture
async def store(open_store: Opener) -> StateStore:
    return await open_store()
