"""The ledger of records not (yet) in Ometria, in the SQLite state: one row per job, stream and
record key (:class:`~ometria_sync.state.store.LedgerEntry`). Synchronous, like the rest of the
SQLite side; ``sqlite_store.py`` runs the writes on the state thread, in the order submitted.

Guarantees:

* a row is written whole (``INSERT OR REPLACE``): what it holds is decided by the pipeline
  (``pipeline/ledger.py``), so both stores keep exactly the same rows;
* a store opened for one job reads and writes only that job's rows;
* ``put`` and ``drop`` are single statements: a killed process leaves each either done or not.
"""

from __future__ import annotations

import sqlite3

import msgspec

from ometria_sync.errors import StateError
from ometria_sync.state.store import CleanVerify, LedgerEntry

#: version 4: the ledger (the rows already there stay as they are)
V4 = """
CREATE TABLE IF NOT EXISTS ledger (
    job TEXT NOT NULL, stream TEXT NOT NULL, key TEXT NOT NULL, kind TEXT NOT NULL,
    reason TEXT NOT NULL, content_hash INTEGER NOT NULL, first_run TEXT NOT NULL,
    first_seen TEXT NOT NULL, last_run TEXT NOT NULL, last_seen TEXT NOT NULL,
    attempts INTEGER NOT NULL, payload TEXT, PRIMARY KEY (job, stream, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS clean_verifies (
    job TEXT PRIMARY KEY, verified_at TEXT NOT NULL, errors TEXT NOT NULL)
"""
_COLUMNS = ("stream, key, reason, content_hash, first_run, first_seen, last_run, last_seen, "
            "attempts, kind, payload")


class SqliteLedger:
    """The job's ledger rows in the state's SQLite database."""

    def __init__(self, db: sqlite3.Connection, job: str) -> None:
        self._db = db
        self.job = job

    def put(self, rows: list[LedgerEntry]) -> None:
        """Write these rows whole, replacing a row of the same stream and key."""
        values = [(self.job, *msgspec.structs.astuple(r)) for r in rows]
        try:
            self._db.executemany(
                f"INSERT OR REPLACE INTO ledger (job, {_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
        except sqlite3.Error as exc:
            raise StateError(f"ledger: cannot write: {exc}") from None

    def drop(self, stream: str, keys: list[str]) -> None:
        """These records are in Ometria now (acknowledged): they leave the ledger."""
        try:
            self._db.execute(
                "DELETE FROM ledger WHERE job = ? AND stream = ? "
                "AND key IN (SELECT value FROM json_each(?))",
                (self.job, stream, msgspec.json.encode(keys).decode()))
        except sqlite3.Error as exc:
            raise StateError(f"ledger: cannot write: {exc}") from None

    def rows(self, stream: str | None, key: str | None, unsent: bool = False
             ) -> list[LedgerEntry]:
        """The job's rows (of one stream, of one key; ``unsent``: only those not refused,
        undelivered or parked), in stream and key order."""
        try:
            found = self._db.execute(
                f"SELECT {_COLUMNS} FROM ledger WHERE job = ? AND (? IS NULL OR stream = ?) "
                "AND (? IS NULL OR key = ?) AND (? = 0 OR kind <> 'refused') "
                "ORDER BY stream, key", (self.job, stream, stream, key, key, unsent)).fetchall()
        except sqlite3.Error as exc:
            raise StateError(f"ledger: cannot read: {exc}") from None
        return [LedgerEntry(*row) for row in found]

    def lookup(self, stream: str, keys: list[str]) -> list[LedgerEntry]:
        """The stream's rows of those ``keys`` that have one (by the primary key)."""
        try:
            found = self._db.execute(
                f"SELECT {_COLUMNS} FROM ledger WHERE job = ? AND stream = ? "
                "AND key IN (SELECT value FROM json_each(?))",
                (self.job, stream, msgspec.json.encode(keys).decode())).fetchall()
        except sqlite3.Error as exc:
            raise StateError(f"ledger: cannot read: {exc}") from None
        return [LedgerEntry(*row) for row in found]

    def keys(self, stream: str, after: str, limit: int) -> list[str]:
        """A page of the stream's keys, in key order, after ``after``."""
        try:
            found = self._db.execute("SELECT key FROM ledger WHERE job = ? AND stream = ? "
                                     "AND key > ? ORDER BY key LIMIT ?",
                                     (self.job, stream, after, limit)).fetchall()
        except sqlite3.Error as exc:
            raise StateError(f"ledger: cannot read: {exc}") from None
        return [key for (key,) in found]

    def record_clean_verify(self, at: str, errors: list[str]) -> None:
        """The job's last clean ``verify --all`` (replacing the one before)."""
        self._db.execute("INSERT OR REPLACE INTO clean_verifies VALUES (?, ?, ?)",
                         (self.job, at, msgspec.json.encode(errors).decode()))

    def last_clean_verify(self) -> CleanVerify | None:
        row = self._db.execute("SELECT verified_at, errors FROM clean_verifies WHERE job = ?",
                               (self.job,)).fetchone()
        return None if row is None else CleanVerify(row[0], msgspec.json.decode(row[1]))

    def forget(self, stream: str | None) -> None:
        """Delete the job's rows (of one stream, or of all, with its last clean verify):
        ``reset``."""
        self._db.execute("DELETE FROM ledger WHERE job = ? AND (? IS NULL OR stream = ?)",
                         (self.job, stream, stream))
        if stream is None:
            self._db.execute("DELETE FROM clean_verifies WHERE job = ?", (self.job,))
