"""The job's state: checkpoints, run history, change hashes, the account, dead letters and the
run lock, in SQLite or PostgreSQL (and ``warnings.jsonl`` beside the dead letter).
:func:`open_state` opens the store ``state.checkpoint_url`` names (the interface and its
guarantees: ``store.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from ometria_sync.errors import StateError
from ometria_sync.net import DEFAULT_SCHEMA, parse_state_url, url_scheme
from ometria_sync.state.deadletter import DatabaseDeadLetter, DeadLetterWriter
from ometria_sync.state.pg_state import PostgresState
from ometria_sync.state.presence import Census, PresenceIndex, presence_index
from ometria_sync.state.sqlite_store import SqliteState
from ometria_sync.state.store import (
    AccountIdentity,
    CleanVerify,
    LedgerEntry,
    Pending,
    StateStore,
    check_schema,
    comparable,
    utc_now,
)
from ometria_sync.state.warning_log import WARNINGS_PER_STREAM, WarningLog

__all__ = [
    "WARNINGS_PER_STREAM",
    "AccountIdentity",
    "Census",
    "CleanVerify",
    "DatabaseDeadLetter",
    "DeadLetterWriter",
    "LedgerEntry",
    "Pending",
    "PresenceIndex",
    "StateStore",
    "WarningLog",
    "comparable",
    "open_state",
    "presence_index",
    "utc_now",
]


async def open_state(url: str, schema: str = DEFAULT_SCHEMA, *, job: str = "",
                     streams: Sequence[str] = ()) -> StateStore:
    """The state of the job named ``job`` in the store ``state.checkpoint_url`` names: it reads
    and writes that job's rows only, and its run lock is the job's. The first job to open a
    store written before state was keyed by the job adopts the old rows of its ``streams``
    (every stream its job file lists). ``job`` '' is no named job: the old rows not adopted.
    StateError when it cannot be opened."""
    where = parse_state_url(url)
    if where is None:
        raise StateError(f"state.checkpoint_url: {url_scheme(url)}:// stores are not "
                         "supported; use sqlite:///PATH or postgresql://...")
    if where.kind == "sqlite":
        return await SqliteState.open(url, job, streams)
    return await PostgresState.open(url, check_schema(schema), job, streams)
