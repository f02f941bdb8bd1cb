"""The SQLite checkpoint store's tables, created on first use; the version in ``user_version``.

Migrating runs in one ``BEGIN IMMEDIATE`` transaction that reads the version inside it, so two
processes opening an old store at once migrate it once. A store written by a newer ometria-sync
(a version this code does not know) is refused rather than misread.

Since version 3 every row belongs to a job (its ``job`` column): several job files may share
one database file without sharing checkpoints, run history, change hashes, dead letters or
account. Rows written before carry ``job = ''`` (no named job); :func:`adopt_legacy` hands them
to the first job that opens the store listing their stream.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ometria_sync.errors import StateError

#: what versions 1 and 2 had (a store of version 0 may have some of it): created when missing,
#: so that version 3's rebuild below starts from the same tables whatever the store's age
_V2 = """
CREATE TABLE IF NOT EXISTS checkpoints (
    stream TEXT NOT NULL, part TEXT NOT NULL, position TEXT NOT NULL, fingerprint TEXT,
    delivered INTEGER NOT NULL DEFAULT 0, updated_at TEXT NOT NULL, PRIMARY KEY (stream, part));
CREATE TABLE IF NOT EXISTS stream_runs (
    stream TEXT PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT, outcome TEXT NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS account (
    id INTEGER PRIMARY KEY CHECK (id = 1), base_url TEXT NOT NULL, key_sha256 TEXT NOT NULL,
    recorded_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, stream TEXT NOT NULL, time TEXT NOT NULL,
    entry TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS streams (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS record_hashes (
    stream INTEGER NOT NULL, id_hash INTEGER NOT NULL, content_hash INTEGER NOT NULL,
    PRIMARY KEY (stream, id_hash)) WITHOUT ROWID
"""
#: every row keyed by its job; the rows already there become the rows of no named job ('')
_V3 = """
CREATE TABLE checkpoints_v3 (
    job TEXT NOT NULL, stream TEXT NOT NULL, part TEXT NOT NULL, position TEXT NOT NULL,
    fingerprint TEXT, delivered INTEGER NOT NULL DEFAULT 0, updated_at TEXT NOT NULL,
    PRIMARY KEY (job, stream, part));
INSERT INTO checkpoints_v3 SELECT '', stream, part, position, fingerprint, delivered, updated_at
    FROM checkpoints;
DROP TABLE checkpoints;
ALTER TABLE checkpoints_v3 RENAME TO checkpoints;
CREATE TABLE stream_runs_v3 (
    job TEXT NOT NULL, stream TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT,
    outcome TEXT NOT NULL, delivered INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (job, stream));
INSERT INTO stream_runs_v3 SELECT '', stream, started_at, finished_at, outcome, delivered
    FROM stream_runs;
DROP TABLE stream_runs;
ALTER TABLE stream_runs_v3 RENAME TO stream_runs;
CREATE TABLE account_v3 (
    job TEXT PRIMARY KEY, base_url TEXT NOT NULL, key_sha256 TEXT NOT NULL,
    recorded_at TEXT NOT NULL);
INSERT INTO account_v3 SELECT '', base_url, key_sha256, recorded_at FROM account;
DROP TABLE account;
ALTER TABLE account_v3 RENAME TO account;
CREATE TABLE streams_v3 (
    id INTEGER PRIMARY KEY, job TEXT NOT NULL, name TEXT NOT NULL, UNIQUE (job, name));
INSERT INTO streams_v3 SELECT id, '', name FROM streams;
DROP TABLE streams;
ALTER TABLE streams_v3 RENAME TO streams;
ALTER TABLE dead_letters ADD COLUMN job TEXT NOT NULL DEFAULT '';
CREATE INDEX dead_letters_job ON dead_letters (job, id)
"""
#: 1: the ``account`` table (a store of version 0 gets it, empty, and adopts the next run's
#: account, see :meth:`SqliteCheckpointStore.claim_account`); 2: ``dead_letters``
#: (``state.dead_letter = "database"``); 3: every row keyed by its job
SCHEMA_VERSION = 3
#: the tables whose rows a job adopts, and the column naming the stream
_ADOPTED = (("checkpoints", "stream"), ("stream_runs", "stream"), ("dead_letters", "stream"),
            ("streams", "name"))


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring the store to SCHEMA_VERSION in one transaction; StateError for a store from a
    newer ometria-sync (``path`` names it in the message)."""
    if _version(db) == SCHEMA_VERSION:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        version = _version(db)  # again: another process may have migrated meanwhile
        if version > SCHEMA_VERSION:
            raise StateError(f"checkpoint store {path}: written by a newer ometria-sync "
                             f"(schema {version}, this one reads up to {SCHEMA_VERSION})")
        if version < 3:
            for statement in (*_V2.split(";"), *_V3.split(";")):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def _has_legacy(db: sqlite3.Connection) -> bool:
    return any(db.execute(f"SELECT 1 FROM {table} WHERE job = '' LIMIT 1").fetchone()
               for table, _ in _ADOPTED)


def adopt_legacy(db: sqlite3.Connection, job: str, streams: list[str]) -> int:
    """Give ``job`` the rows of ``streams`` written before state was keyed by the job (and,
    when it took any and has no account of its own, a copy of the account they describe).

    Once adopted they are the job's: another job listing a stream of the same name finds
    nothing. One ``BEGIN IMMEDIATE`` transaction, so two jobs opening at once never both take
    them. Returns how many rows were adopted."""
    if not job or not streams or not _has_legacy(db):
        return 0  # read first: no write lock taken at every open
    marks = ",".join("?" * len(streams))
    adopted = 0
    db.execute("BEGIN IMMEDIATE")
    try:
        for table, column in _ADOPTED:
            adopted += db.execute(f"UPDATE {table} SET job = ? WHERE job = '' "
                                  f"AND {column} IN ({marks})", (job, *streams)).rowcount
        if adopted:
            db.execute("INSERT OR IGNORE INTO account (job, base_url, key_sha256, recorded_at) "
                       "SELECT ?, base_url, key_sha256, recorded_at FROM account WHERE job = ''",
                       (job,))
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return adopted
