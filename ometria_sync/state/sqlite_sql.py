"""The state's SQLite side, synchronous: the tables and their migration, then the store itself
(:class:`SqliteCheckpointStore`: how far each stream, and each part of it, e.g. each file, got;
run history, the account, dead letters) and its change hashes (:class:`ChangeIndex`, in
``change_index_sql.py``). Each call
is a short local write; ``sqlite_store.py`` runs them on a thread of their own.

Guarantees:

* a checkpoint is written in one SQLite transaction, durable against a killed process (WAL
  mode), and only when :func:`~ometria_sync.state.store.checked_total` allows it
  (never backwards, never empty, see ``store.checked_total``);
* a database that is corrupt, locked or unreadable is a clear :class:`StateError`, never a silent
  restart from zero. Files are created readable by their owner only: they name customers' ids;
* a store is opened for one job (``job``) and reads and writes only that job's rows, so job
  files sharing one database never share checkpoints, runs, hashes, dead letters or account.

The tables are created on first use; the version is in ``user_version``. Migrating runs in one
``BEGIN IMMEDIATE`` transaction that reads the version inside it, so two processes opening an
old store at once migrate it once. A store written by a newer ometria-sync
(a version this code does not know) is refused rather than misread.

Since version 3 every row belongs to a job (its ``job`` column): several job files may share
one database file without sharing checkpoints, run history, change hashes, dead letters or
account. Rows written before carry ``job = ''`` (no named job); :func:`adopt_legacy` hands them
to the first job that opens the store listing their stream.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any

import msgspec

from ometria_sync.errors import StateError
from ometria_sync.net import parse_state_url, url_scheme
from ometria_sync.state.change_index_sql import ChangeIndex, migrate_recent_hashes
from ometria_sync.state.ledger_sql import V4, SqliteLedger
from ometria_sync.state.line_groups_sql import migrate_line_groups
from ometria_sync.state.run_history import migrate_sqlite_run_reports
from ometria_sync.state.sqlite_tx import immediate
from ometria_sync.state.store import (
    AccountIdentity,
    Checkpoint,
    StreamRun,
    checked_total,
    mismatch,
    utc_now,
)

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
#: (``state.dead_letter = "database"``); 3: every row keyed by its job; 4: the ledger of
#: records not (yet) in Ometria (``ledger_sql.py``); 5: ``run_reports`` (``run_history.py``);
#: 6: ``line_groups``, lines Ometria holds as they are (``line_groups_sql.py``); 7: the change
#: index's side table of recent hashes, ``recent_hashes`` (``change_index_sql.py``): an older
#: ometria-sync would read the index without it
SCHEMA_VERSION = 7
#: the tables whose rows a job adopts, and the column naming the stream
_ADOPTED = (("checkpoints", "stream"), ("stream_runs", "stream"), ("dead_letters", "stream"),
            ("streams", "name"))


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring the store to SCHEMA_VERSION in one transaction; StateError for a store from a
    newer ometria-sync (``path`` names it in the message)."""
    if _version(db) == SCHEMA_VERSION:
        return
    with immediate(db):
        version = _version(db)  # again: another process may have migrated meanwhile
        if version > SCHEMA_VERSION:
            raise StateError(f"checkpoint store {path}: written by a newer ometria-sync "
                             f"(schema {version}, this one reads up to {SCHEMA_VERSION})")
        if version < 3:
            for statement in (*_V2.split(";"), *_V3.split(";")):
                db.execute(statement)
        for statement in V4.split(";"):  # IF NOT EXISTS: harmless where it is done
            db.execute(statement)
        if version < 5:
            migrate_sqlite_run_reports(db)
        if version < 6:
            migrate_line_groups(db)
        if version < 7:
            migrate_recent_hashes(db)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


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
    with immediate(db):
        for table, column in _ADOPTED:
            adopted += db.execute(f"UPDATE {table} SET job = ? WHERE job = '' "
                                  f"AND {column} IN ({marks})", (job, *streams)).rowcount
        if adopted:
            db.execute("INSERT OR IGNORE INTO account (job, base_url, key_sha256, recorded_at) "
                       "SELECT ?, base_url, key_sha256, recorded_at FROM account WHERE job = ''",
                       (job,))
    return adopted


class SqliteCheckpointStore:
    """Checkpoints in a SQLite file (WAL mode). Synchronous: each call is a short local write."""

    def __init__(self, path: str | Path, job: str = "") -> None:
        self.path = Path(path)
        #: the job whose rows this store reads and writes ('': rows of no named job)
        self.job = job
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            self._db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            migrate(self._db, self.path)
            self.changes = ChangeIndex(self._db, job)
            self.ledger = SqliteLedger(self._db, job)
        except (sqlite3.Error, OSError) as exc:
            raise self._error("cannot open", exc) from None

    @property
    def db(self) -> sqlite3.Connection:
        return self._db

    def adopt(self, streams: list[str]) -> int:
        """Take the rows of ``streams`` written before state was keyed by the job
        (:func:`adopt_legacy`)."""
        try:
            return adopt_legacy(self._db, self.job, streams)
        except sqlite3.Error as exc:
            raise self._error("cannot write", exc) from None

    def account(self) -> AccountIdentity | None:
        """The Ometria account this store's checkpoints and hashes describe (None: not yet
        recorded)."""
        try:
            row = self._db.execute("SELECT base_url, key_sha256 FROM account WHERE job = ?",
                                   (self.job,)).fetchone()
        except sqlite3.Error as exc:
            raise self._error("cannot read", exc) from None
        return None if row is None else AccountIdentity(row[0], row[1])

    def claim_account(self, current: AccountIdentity) -> bool:
        """Check that the store belongs to ``current``, recording it if no account is recorded
        yet (a new store, or one from before accounts were kept); True when just recorded.
        Raises :class:`AccountMismatch` for another account."""
        try:
            with immediate(self._db):
                stored = self.account()
                if stored is None:
                    self._db.execute("INSERT INTO account VALUES (?, ?, ?, ?)",
                                     (self.job, current.base_url, current.key_sha256,
                                      utc_now()))
                    return True
        except sqlite3.Error as exc:
            raise self._error("cannot write", exc) from None
        if stored != current:
            raise mismatch(stored, current)
        return False

    def _error(self, doing: str, exc: BaseException) -> StateError:
        text = str(exc)
        if "locked" in text:
            hint = "another process holds it: is another run of this job going?"
        elif "not a database" in text or "malformed" in text:
            hint = "the file is damaged; restore it from a backup, or run `reset` to start over"
        else:
            hint = text
        return StateError(f"checkpoint store {self.path}: {doing}: {hint}")

    def close(self) -> None:
        """Close the connection, first merging the change hashes it wrote (if that fails, they
        stay in ``recent_hashes``, which every reader reads: nothing is lost)."""
        if self.changes.recent:
            with contextlib.suppress(StateError):
                self.changes.merge()
        self._db.close()

    def load(self, stream: str, part: str) -> Checkpoint | None:
        try:
            row = self._db.execute(
                "SELECT stream, part, position, fingerprint, delivered, updated_at "
                "FROM checkpoints WHERE job = ? AND stream = ? AND part = ?",
                (self.job, stream, part),
            ).fetchone()
        except sqlite3.Error as exc:
            raise self._error("cannot read", exc) from None
        return None if row is None else self._row(row)

    def _row(self, row: tuple[Any, ...]) -> Checkpoint:
        try:
            position = msgspec.json.decode(row[2])
        except msgspec.DecodeError as exc:
            raise self._error(f"position of stream {row[0]!r} is unreadable", exc) from None
        return Checkpoint(row[0], row[1], position, row[3], row[4], row[5])

    def save(
        self, stream: str, part: str, position: Any, fingerprint: str | None, delivered: int
    ) -> None:
        """Record that everything up to ``position`` is settled; ``delivered`` records added."""
        checked_total(stream, None, position, fingerprint, delivered)  # empty: fail early
        try:
            with immediate(self._db):
                old = self.load(stream, part)
                total = checked_total(stream, old, position, fingerprint, delivered)
                self._db.execute(
                    "INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (job, stream, part) DO UPDATE SET position = excluded.position, "
                    "fingerprint = excluded.fingerprint, delivered = excluded.delivered, "
                    "updated_at = excluded.updated_at",
                    (self.job, stream, part, msgspec.json.encode(position).decode(), fingerprint,
                     total, utc_now()),
                )
        except sqlite3.Error as exc:
            raise self._error("cannot write", exc) from None

    def restart(self, stream: str, part: str) -> None:
        """Forget one part's position on purpose (a full refresh reads it from the top)."""
        try:
            self._db.execute(
                "DELETE FROM checkpoints WHERE job = ? AND stream = ? AND part = ?",
                (self.job, stream, part)
            )
        except sqlite3.Error as exc:
            raise self._error("cannot write", exc) from None

    def start_run(self, stream: str) -> None:
        self._write_run(stream, outcome="running", delivered=0, finished=False)

    def finish_run(self, stream: str, outcome: str, delivered: int) -> None:
        self._write_run(stream, outcome=outcome, delivered=delivered, finished=True)

    def _write_run(self, stream: str, *, outcome: str, delivered: int, finished: bool) -> None:
        now = utc_now()
        try:
            if finished:
                self._db.execute(
                    "UPDATE stream_runs SET finished_at = ?, outcome = ?, delivered = ? "
                    "WHERE job = ? AND stream = ?",
                    (now, outcome, delivered, self.job, stream),
                )
            else:
                self._db.execute(
                    "INSERT INTO stream_runs VALUES (?, ?, ?, NULL, ?, 0) ON CONFLICT "
                    "(job, stream) DO UPDATE SET started_at = excluded.started_at, "
                    "finished_at = NULL, outcome = excluded.outcome, delivered = 0",
                    (self.job, stream, now, outcome),
                )
        except sqlite3.Error as exc:
            raise self._error("cannot write", exc) from None

    def checkpoints(self, stream: str | None = None) -> list[Checkpoint]:
        query = ("SELECT stream, part, position, fingerprint, delivered, updated_at "
                 "FROM checkpoints WHERE job = ?")
        args: tuple[str, ...] = (self.job,)
        if stream is not None:
            query, args = query + " AND stream = ?", (self.job, stream)
        try:
            rows = self._db.execute(query + " ORDER BY stream, part", args).fetchall()
        except sqlite3.Error as exc:
            raise self._error("cannot read", exc) from None
        return [self._row(r) for r in rows]

    def last_run(self, stream: str) -> StreamRun | None:
        try:
            row = self._db.execute(
                "SELECT stream, started_at, finished_at, outcome, delivered FROM stream_runs "
                "WHERE job = ? AND stream = ?",
                (self.job, stream),
            ).fetchone()
        except sqlite3.Error as exc:
            raise self._error("cannot read", exc) from None
        return None if row is None else StreamRun(*row)

    def reset(self, stream: str | None = None) -> int:
        """Forget the job's checkpoints and change hashes (of one stream, or all, with the
        account the job's state belongs to). Returns how many checkpoints were removed."""
        where, args = ("WHERE job = ? AND stream = ?", (self.job, stream)) if stream else (
            "WHERE job = ?", (self.job,))
        try:
            with immediate(self._db):
                count = self._db.execute(f"DELETE FROM checkpoints {where}", args).rowcount
                self._db.execute(f"DELETE FROM stream_runs {where}", args)
                self.changes.forget(stream)
                self.ledger.forget(stream)
                self._db.execute(f"DELETE FROM dead_letters {where}", args)
                if stream is None:  # the whole state forgotten: the next run may be any account
                    self._db.execute("DELETE FROM account WHERE job = ?", (self.job,))
        except sqlite3.Error as exc:
            raise self._error("cannot write", exc) from None
        return int(count)

    def add_dead_letters(self, rows: list[tuple[str, str, str, str]]) -> None:
        """Store refused records: (run id, stream, time, the entry's JSON line)."""
        try:
            self._db.executemany(
                "INSERT INTO dead_letters (job, run_id, stream, time, entry) "
                "VALUES (?, ?, ?, ?, ?)", [(self.job, *row) for row in rows])
        except sqlite3.Error as exc:
            raise self._error("cannot write", exc) from None

    def dead_letters(
        self, stream: str | None, run_id: str | None, after: int, limit: int
    ) -> list[tuple[int, str]]:
        """(row id, entry) of refused records after row ``after``, oldest first."""
        try:
            return self._db.execute(
                "SELECT id, entry FROM dead_letters WHERE job = ? AND id > ? "
                "AND (? IS NULL OR stream = ?) AND (? IS NULL OR run_id = ?) ORDER BY id LIMIT ?",
                (self.job, after, stream, stream, run_id, run_id, limit)).fetchall()
        except sqlite3.Error as exc:
            raise self._error("cannot read", exc) from None


def open_checkpoint_store(url: str, job: str = "") -> SqliteCheckpointStore:
    """The store named by ``state.checkpoint_url`` (``sqlite:///PATH``), for ``job``."""
    where = parse_state_url(url)
    if where is not None and where.kind == "sqlite":
        return SqliteCheckpointStore(where.path, job)
    raise StateError(
        f"state.checkpoint_url: {url_scheme(url)}:// stores are not supported yet; "
        "use sqlite:///PATH"
    )
