"""Change detection: per stream and record id, a hash of the record as Ometria last acknowledged it.

A nightly re-export of two million contacts of which 1% changed should send 20,000 records, not
two million. Each record's canonical encoding (sorted keys) is hashed (``hash64`` and ``identity``
in :mod:`ometria_sync.pipeline.change_filter`, where change detection lives); a record whose hash
equals the stored one for its id is skipped as *unchanged*.

Guarantees:

* a hash is written only after Ometria acknowledged the record (a crash between send and
  acknowledgement leaves the old hash, so the record is sent again);
* a send whose outcome is not a clean acknowledgement (``rejected > 0``: Ometria does not say
  which records it refused; a batch that failed after its retries, or was cut off at the grace
  period) deletes the stored hashes of its ids: Ometria may hold the new version or the old
  one, so the next export sends them whatever their content;
* one write stores one hash per id, the last acknowledged version's;
* storage is compact: the id is kept as a 64-bit hash too, in a WITHOUT ROWID table (two integers
  per row). Two ids sharing an id hash at worst cost an extra send, never a skipped change, unless
  their content hashes also collide (odds around 2^-64 per pair).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

import msgspec

from ometria_sync.errors import StateError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS streams (
    id INTEGER PRIMARY KEY,
    job TEXT NOT NULL,
    name TEXT NOT NULL,
    UNIQUE (job, name)
);
CREATE TABLE IF NOT EXISTS record_hashes (
    stream INTEGER NOT NULL,
    id_hash INTEGER NOT NULL,
    content_hash INTEGER NOT NULL,
    PRIMARY KEY (stream, id_hash)
) WITHOUT ROWID;
"""
_LOOKUP_CHUNK = 500


class ChangeIndex:
    """Hashes of acknowledged records, in the checkpoint store's SQLite database; a stream is
    the job's (``job``): two jobs' streams of one name have their own ids and hashes."""

    def __init__(self, db: sqlite3.Connection, job: str = "") -> None:
        self._db = db
        self.job = job
        db.executescript(_SCHEMA)  # a migrated store has them (``sqlite_schema.py``)

    def stream_id(self, name: str) -> int:
        self._db.execute("INSERT OR IGNORE INTO streams (job, name) VALUES (?, ?)",
                         (self.job, name))
        row = self._db.execute("SELECT id FROM streams WHERE job = ? AND name = ?",
                               (self.job, name)).fetchone()
        return int(row[0])

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

    def remember(self, stream: int, pairs: Iterable[tuple[int, int]]) -> None:
        """Store (id hash, content hash) pairs of acknowledged records, in one statement.

        The pairs go in as one JSON array that SQLite unpacks itself (``json_each``): one call
        that runs without Python's GIL, where ``executemany`` took the GIL back for every row.
        From the state thread, that cost the event loop's thread a fifth of its records/s."""
        self._write("INSERT OR REPLACE INTO record_hashes "
                    "SELECT ?, value ->> 0, value ->> 1 FROM json_each(?)", stream, list(pairs))

    def forget_ids(self, stream: int, id_hashes: Iterable[int]) -> None:
        """Delete the stored hashes of these ids: what Ometria holds for them is unknown (a
        send whose outcome was not a clean acknowledgement), so nothing may be judged
        unchanged against them."""
        self._write("DELETE FROM record_hashes WHERE stream = ? "
                    "AND id_hash IN (SELECT value FROM json_each(?))", stream, list(id_hashes))

    def _write(self, sql: str, stream: int, rows: list[Any]) -> None:
        """``sql`` with the stream and ``rows`` as one JSON array (unpacked by ``json_each``)."""
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
        """Delete the job's hashes (of one stream, or of all its streams)."""
        self._db.execute(
            "DELETE FROM record_hashes WHERE stream IN (SELECT id FROM streams WHERE job = ? "
            "AND (? IS NULL OR name = ?))", (self.job, name, name))
