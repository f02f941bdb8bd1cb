"""The SQLite checkpoint store: how far each stream (and each part of it, e.g. each file) got.

Guarantees:

* a checkpoint is written in one SQLite transaction, durable against a killed process (WAL
  mode), and only when :func:`~ometria_sync.state.checkpoint_rules.checked_total` allows it
  (never backwards, never empty, see ``checkpoint_rules.py``);
* a database that is corrupt, locked or unreadable is a clear :class:`StateError`, never a silent
  restart from zero. Files are created readable by their owner only: they name customers' ids;
* a store is opened for one job (``job``) and reads and writes only that job's rows, so job
  files sharing one database never share checkpoints, runs, hashes, dead letters or account.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import msgspec

from ometria_sync.errors import StateError
from ometria_sync.net.urls import parse_state_url
from ometria_sync.state.account import AccountIdentity, mismatch
from ometria_sync.state.change_index import ChangeIndex
from ometria_sync.state.checkpoint_rules import Checkpoint, StreamRun, checked_total, utc_now
from ometria_sync.state.sqlite_schema import adopt_legacy, migrate


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
        except (sqlite3.Error, OSError) as exc:
            raise self._error("cannot open", exc) from None

    def adopt(self, streams: list[str]) -> int:
        """Take the rows of ``streams`` written before state was keyed by the job
        (:func:`~ometria_sync.state.sqlite_schema.adopt_legacy`)."""
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
            with self._transaction():
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
            with self._transaction():
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

    def _transaction(self) -> Any:
        return _Transaction(self._db)

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
            with self._transaction():
                count = self._db.execute(f"DELETE FROM checkpoints {where}", args).rowcount
                self._db.execute(f"DELETE FROM stream_runs {where}", args)
                self.changes.forget(stream)
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


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")


def open_checkpoint_store(url: str, job: str = "") -> SqliteCheckpointStore:
    """The store named by ``state.checkpoint_url`` (``sqlite:///PATH``), for ``job``."""
    where = parse_state_url(url)
    if where is not None and where.kind == "sqlite":
        return SqliteCheckpointStore(where.path, job)
    raise StateError(
        f"state.checkpoint_url: {url.split('://')[0]}:// stores are not supported yet; "
        "use sqlite:///PATH"
    )
