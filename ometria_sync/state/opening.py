"""Opening the state store ``state.checkpoint_url`` names (SQLite or PostgreSQL)."""

from __future__ import annotations

from ometria_sync.errors import StateError
from ometria_sync.state.pg_state import PostgresState
from ometria_sync.state.sqlite_state import SqliteState
from ometria_sync.state.store import DEFAULT_SCHEMA, StateStore, check_schema, is_postgres_url


async def open_state(url: str, schema: str = DEFAULT_SCHEMA) -> StateStore:
    """The store named by ``state.checkpoint_url``; StateError when it cannot be opened."""
    if url.startswith("sqlite:///"):
        return await SqliteState.open(url)
    if is_postgres_url(url):
        return await PostgresState.open(url, check_schema(schema))
    raise StateError(f"state.checkpoint_url: {url.split('://')[0]}:// stores are not supported; "
                     "use sqlite:///PATH or postgresql://...")
