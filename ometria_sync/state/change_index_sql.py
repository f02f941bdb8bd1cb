"""The SQLite change index: the hashes of acknowledged records, one row per (stream, id hash),
in the checkpoint store's database (:class:`~.sqlite_sql.SqliteCheckpointStore` opens it).
Synchronous, like the store: ``sqlite_store.py`` runs its calls on the state thread."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

import msgspec

from ometria_sync.errors import StateError
from ometria_sync.state.line_groups_sql import SqliteLineGroups

_CHANGE_TABLES = """
CREATE TABLE IF NOT EXISTS streams (
    id INTEGER PRIMARY KEY, job TEXT NOT NULL, name TEXT NOT NULL, UNIQUE (job, name));
CREATE TABLE IF NOT EXISTS record_hashes (
    stream INTEGER NOT NULL, id_hash INTEGER NOT NULL, content_hash INTEGER NOT NULL,
    PRIMARY KEY (stream, id_hash)) WITHOUT ROWID;
"""
_LOOKUP_CHUNK = 500


class ChangeIndex:
    """Hashes of acknowledged records, in the checkpoint store's SQLite database; a stream is
    the job's (``job``): two jobs' streams of one name have their own ids and hashes. Its
    guarantees are change detection's (``pipeline/change_filter.py``). A run writes them
    ``settle.HASHES_PER_WRITE`` at a time, each write one statement in id order;
    which lookups reach it at all: ``written_ids.py``."""

    def __init__(self, db: sqlite3.Connection, job: str = "") -> None:
        self._db = db
        self.job = job
        db.executescript(_CHANGE_TABLES)  # a migrated store has them (migrate, above)
        self.groups = SqliteLineGroups(db)

    def stream_id(self, name: str) -> int:
        self._db.execute("INSERT OR IGNORE INTO streams (job, name) VALUES (?, ?)",
                         (self.job, name))
        row = self._db.execute("SELECT id FROM streams WHERE job = ? AND name = ?",
                               (self.job, name)).fetchone()
        return int(row[0])

    def holds_any(self, stream: int) -> bool:
        """Whether the stream has any stored hash (``written_ids.py``)."""
        try:
            return self._db.execute("SELECT 1 FROM record_hashes WHERE stream = ? LIMIT 1",
                                    (stream,)).fetchone() is not None
        except sqlite3.Error as exc:
            raise StateError(f"change index: cannot read: {exc}") from None

    def lookup(self, stream: int, id_hashes: list[int]) -> dict[int, int]:
        """Stored content hashes for those of ``id_hashes`` that are known."""
        try:
            return self._lookup(stream, id_hashes)
        except sqlite3.Error as exc:
            raise StateError(f"change index: cannot read: {exc}") from None

    def _lookup(self, stream: int, id_hashes: list[int]) -> dict[int, int]:
        found: dict[int, int] = {}
        for start in range(0, len(id_hashes), _LOOKUP_CHUNK):
            part = id_hashes[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(part))
            rows = self._db.execute(
                f"SELECT id_hash, content_hash FROM record_hashes "
                f"WHERE stream = ? AND id_hash IN ({marks})",
                (stream, *part),
            )
            found.update(rows)
        return found

    def remember(self, stream: int, pairs: Iterable[tuple[int, int]],
                 groups: list[int] | None = None) -> None:
        """Store (id hash, content hash) pairs of acknowledged records, in one statement.

        One JSON text that SQLite unpacks itself (``json_each``): one call without Python's
        GIL (``executemany`` took it back per row, a fifth of the event loop's records/s).
        Without groups an object ``{"id hash": content hash}``, its keys cast back to integers
        (0.2 us a pair against 0.8 for an array of pairs, each re-parsed by ``->>``). Rows go
        in sorted by id hash (SQLite sorts them: 0.4 us a pair less than Python sorting
        tuples), so the B-tree's pages are visited in order, each once."""
        if groups is None:
            self._write("INSERT OR REPLACE INTO record_hashes (stream, id_hash, content_hash) "
                        "SELECT ?, CAST(key AS INTEGER) AS i, value FROM json_each(?) "
                        "ORDER BY i", stream, dict(pairs))
            return
        rows = [[i, c, g or None] for (i, c), g in zip(pairs, groups, strict=True)]
        self._write("INSERT OR REPLACE INTO record_hashes (stream, id_hash, content_hash, "
                    "line_group) SELECT ?, value ->> 0 AS i, value ->> 1, value ->> 2 "
                    "FROM json_each(?) ORDER BY i", stream, rows)

    def forget_ids(self, stream: int, id_hashes: Iterable[int]) -> None:
        """Delete the stored hashes of these ids: what Ometria holds for them is unknown (a
        send whose outcome was not a clean acknowledgement), so nothing may be judged
        unchanged against them."""
        self._write("DELETE FROM record_hashes WHERE stream = ? "
                    "AND id_hash IN (SELECT value FROM json_each(?))", stream, list(id_hashes))

    def _write(self, sql: str, stream: int, rows: list[Any] | dict[int, int]) -> None:
        """``sql`` with the stream and ``rows`` as one JSON text (unpacked by ``json_each``)."""
        try:
            self._db.execute(sql, (stream, msgspec.json.encode(rows).decode()))
        except sqlite3.Error as exc:
            raise StateError(f"change index: cannot write: {exc}") from None

    def count(self, name: str) -> int:
        row = self._db.execute(
            "SELECT count(*) FROM record_hashes JOIN streams ON streams.id = record_hashes.stream "
            "WHERE streams.job = ? AND streams.name = ?",
            (self.job, name),
        ).fetchone()
        return int(row[0])

    def forget(self, name: str | None = None) -> None:
        """Delete the job's hashes and line groups (of one stream, or of all its streams)."""
        self.groups.forget(self.job, name)
        self._db.execute(
            "DELETE FROM record_hashes WHERE stream IN (SELECT id FROM streams WHERE job = ? "
            "AND (? IS NULL OR name = ?))", (self.job, name, name))
