"""The SQLite checkpoint store's tables, created on first use; the version in ``user_version``.

Tables are only ever added, so migrating is creating what is missing. A store written by a newer
ometria-sync (a version this code does not know) is refused rather than misread. The change
index creates its own tables (``change_index.py``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ometria_sync.errors import StateError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    stream TEXT NOT NULL,
    part TEXT NOT NULL,
    position TEXT NOT NULL,
    fingerprint TEXT,
    delivered INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (stream, part)
);
CREATE TABLE IF NOT EXISTS stream_runs (
    stream TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    outcome TEXT NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS account (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    base_url TEXT NOT NULL,
    key_sha256 TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    time TEXT NOT NULL,
    entry TEXT NOT NULL
);
"""
#: 1: the ``account`` table (a store of version 0 gets it, empty, and adopts the next run's
#: account, see :meth:`SqliteCheckpointStore.claim_account`); 2: ``dead_letters``
#: (``state.dead_letter = "database"``)
SCHEMA_VERSION = 2


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Create what is missing and record the version; StateError for a store from a newer
    ometria-sync (``path`` names it in the message)."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise StateError(f"checkpoint store {path}: written by a newer ometria-sync "
                         f"(schema {version}, this one reads up to {SCHEMA_VERSION})")
    db.executescript(_SCHEMA)
    if version < SCHEMA_VERSION:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
