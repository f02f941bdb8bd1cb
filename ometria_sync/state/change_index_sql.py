"""The SQLite change index: the hashes of acknowledged records, one row per (stream, id hash),
in the checkpoint store's database (:class:`~.sqlite_sql.SqliteCheckpointStore` opens it).
Synchronous, like the store: ``sqlite_store.py`` runs its calls on the state thread.

**Two tables, one index.** New hashes go into ``recent_hashes`` (schema version 7), a small
table of the same rows, and are moved into ``record_hashes`` in bulk (:meth:`ChangeIndex.merge`:
one transaction, in key order) once ``MERGE_AT`` rows were written, and when the store closes.
A write of thousands of random ids into the large B-tree dirtied about every one of its pages,
each written to the WAL at every commit; into the small table it dirties that table's few
pages, and a merge writes each page of the index once for many writes (``BENCHMARKS.md``).

Guarantees: an id's row is its ``recent_hashes`` row when it has one, else its
``record_hashes`` row (the *effective* row). Every read of the index reads both in one
statement (one snapshot: a merge on the writer's connection is never seen half done; the
presence joins, ``presence.py``, merge first on the state thread instead), and every write
that deletes rows does it in both, in one transaction. So a kill -9 at any moment leaves the
effective rows of the last committed write, merged or not, and the next run reads them as they
were: forgetting only the newer row would have made an older one the reference again. The line
groups' promise (``line_groups_sql.py``) holds across both tables: a write into
``recent_hashes`` deletes, in its transaction, the groups the rows it supersedes point to; a
group is pointed to only from effective rows; a merge moves rows with their groups (an upsert:
the triggers see no change)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

import msgspec

from ometria_sync.errors import StateError
from ometria_sync.state.line_groups_sql import SqliteLineGroups
from ometria_sync.state.sqlite_tx import index_write

_CHANGE_TABLES = """
CREATE TABLE IF NOT EXISTS streams (
    id INTEGER PRIMARY KEY, job TEXT NOT NULL, name TEXT NOT NULL, UNIQUE (job, name));
CREATE TABLE IF NOT EXISTS record_hashes (
    stream INTEGER NOT NULL, id_hash INTEGER NOT NULL, content_hash INTEGER NOT NULL,
    line_group INTEGER, PRIMARY KEY (stream, id_hash)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS recent_hashes (
    stream INTEGER NOT NULL, id_hash INTEGER NOT NULL, content_hash INTEGER NOT NULL,
    line_group INTEGER, PRIMARY KEY (stream, id_hash)) WITHOUT ROWID;
"""
_LOOKUP_CHUNK = 500
#: the lengths a lookup's id list is padded to (repeating its first id): each length is a
#: statement of its own, prepared and kept in the connection's statement cache (up to 128), a
#: few tens of KB each; one per count of ids cost 13 MB of SQLite memory by a million ids
_LOOKUP_SIZES = (8, 16, 32, 64, 100, 128, 192, 256, 384, _LOOKUP_CHUNK)
#: rows written to ``recent_hashes`` before they are merged into ``record_hashes``: at 30 bytes
#: a row the table (1.5 MB) stays in the writer's page cache (2 MB), and a merge rewrites each
#: page of a 200,000-id index once per ten 5,000-hash writes instead of once per write
MERGE_AT = 50_000

#: version 7 (:func:`migrate_recent_hashes`): the side table, and the trigger that deletes the
#: group a row of it pointed to when the row changes content or group (an upsert of the same id,
#: or a group kept). It has no delete trigger: a merge empties it by truncation, which a delete
#: trigger would turn into a row-by-row delete (2.3 against 1.1 us a hash); the two writes that
#: delete its rows otherwise delete their groups themselves (:meth:`ChangeIndex.forget_ids`,
#: :meth:`ChangeIndex.forget`)
V7 = (
    "CREATE TABLE IF NOT EXISTS recent_hashes (stream INTEGER NOT NULL, "
    "id_hash INTEGER NOT NULL, content_hash INTEGER NOT NULL, line_group INTEGER, "
    "PRIMARY KEY (stream, id_hash)) WITHOUT ROWID",
    "CREATE TRIGGER IF NOT EXISTS recent_changed AFTER UPDATE ON recent_hashes "
    "WHEN OLD.line_group IS NOT NULL AND (NEW.content_hash != OLD.content_hash "
    "OR NEW.line_group IS NOT OLD.line_group) BEGIN DELETE FROM line_groups "
    "WHERE stream = OLD.stream AND group_hash = OLD.line_group; END",
)
#: the groups the rows of some ids (``?`` the stream twice, then a JSON array of id hashes) in
#: one of the tables point to
_GROUPS_OF = ("DELETE FROM line_groups WHERE stream = ? AND group_hash IN (SELECT line_group "
              "FROM {table} WHERE stream = ? AND line_group IS NOT NULL "
              "AND id_hash IN (SELECT {id} FROM json_each(?)))")
#: the effective rows of some ids (``?`` the stream, then ``{ids}`` twice, a filter of
#: ``id_hash``): ``record_hashes``' first, then ``recent_hashes``', so the later one wins
_EFFECTIVE = ("SELECT id_hash, {cols}, 0 AS p FROM record_hashes WHERE stream = ? "
              "AND id_hash IN {ids} UNION ALL SELECT id_hash, {cols}, 1 FROM recent_hashes "
              "WHERE stream = ? AND id_hash IN {ids} ORDER BY p")

_LOOKUPS = {n: _EFFECTIVE.format(cols="content_hash", ids="(" + ",".join("?" * n) + ")")
            for n in _LOOKUP_SIZES}


def migrate_recent_hashes(db: sqlite3.Connection) -> None:
    """Version 7, in the migration's transaction (after version 6: the triggers name
    ``line_groups``)."""
    for statement in V7:
        db.execute(statement)


class ChangeIndex:
    """Hashes of acknowledged records, in the checkpoint store's SQLite database; a stream is
    the job's (``job``): two jobs' streams of one name have their own ids and hashes. Its
    guarantees are change detection's (``pipeline/change_filter.py``). A run writes them
    ``settle.HASHES_PER_WRITE`` at a time, each write one statement in id order;
    which lookups reach it at all: ``written_ids.py``."""

    def __init__(self, db: sqlite3.Connection, job: str = "") -> None:
        self._db = db
        self.job = job
        # a migrated store has them, with the line groups' triggers (``sqlite_sql.migrate``)
        db.executescript(_CHANGE_TABLES)
        self.groups = SqliteLineGroups(db)
        #: rows this connection wrote to ``recent_hashes`` since its last merge
        self.recent = 0

    def stream_id(self, name: str) -> int:
        self._db.execute("INSERT OR IGNORE INTO streams (job, name) VALUES (?, ?)",
                         (self.job, name))
        row = self._db.execute("SELECT id FROM streams WHERE job = ? AND name = ?",
                               (self.job, name)).fetchone()
        return int(row[0])

    def holds_any(self, stream: int) -> bool:
        """Whether the stream has any stored hash (``written_ids.py``)."""
        try:
            return bool(self._db.execute(
                "SELECT EXISTS (SELECT 1 FROM record_hashes WHERE stream = ?) "
                "OR EXISTS (SELECT 1 FROM recent_hashes WHERE stream = ?)",
                (stream, stream)).fetchone()[0])
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
            size = next(n for n in _LOOKUP_SIZES if n >= len(part))
            part += part[:1] * (size - len(part))  # the same id again finds the same row
            rows = self._db.execute(_LOOKUPS[size], (stream, *part, stream, *part))
            found.update({i: c for i, c, _ in rows})  # in order: recent_hashes' win
        return found

    def remember(self, stream: int, pairs: Iterable[tuple[int, int]],
                 groups: list[int] | None = None) -> None:
        """Store (id hash, content hash) pairs of acknowledged records (into ``recent_hashes``;
        merged into the index once ``MERGE_AT`` rows are there).

        One JSON text that SQLite unpacks itself (``json_each``): one call without Python's
        GIL (``executemany`` took it back per row, a fifth of the event loop's records/s).
        Without groups an object ``{"id hash": content hash}``, its keys cast back to integers
        (0.2 us a pair against 0.8 for an array of pairs, each re-parsed by ``->>``). Not
        sorted: the small table stays in the page cache, and a merge inserts its rows into the
        index in key order, so the index's pages are visited in order, each once.

        A row of ``record_hashes`` superseded this way no longer holds for its group: when the
        stream has groups, the groups those rows point to are deleted first, in the same
        transaction (an id written again in ``recent_hashes``: its trigger)."""
        if groups is None:
            text = msgspec.json.encode(dict(pairs)).decode()
            sql = ("INSERT INTO recent_hashes (stream, id_hash, content_hash) SELECT ?, "
                   "CAST(key AS INTEGER), value FROM json_each(?) WHERE true")
            key = "CAST(key AS INTEGER)"
        else:
            text = msgspec.json.encode([[i, c, g or None] for (i, c), g
                                        in zip(pairs, groups, strict=True)]).decode()
            sql = ("INSERT INTO recent_hashes (stream, id_hash, content_hash, line_group) "
                   "SELECT ?, value ->> 0, value ->> 1, value ->> 2 FROM json_each(?) WHERE true")
            key = "value ->> 0"
        sql += (" ON CONFLICT (stream, id_hash) DO UPDATE SET content_hash = "
                "excluded.content_hash, line_group = excluded.line_group")
        with index_write(self._db):
            if self.groups.any(stream):
                self._db.execute(_GROUPS_OF.format(table="record_hashes", id=key),
                                 (stream, stream, text))
            self.recent += self._db.execute(sql, (stream, text)).rowcount
        if self.recent >= MERGE_AT:
            self.merge()

    def merge(self) -> None:
        """Move every row of ``recent_hashes`` into ``record_hashes``, in key order, in one
        transaction (a kill -9 leaves them in one table or the other, never in neither)."""
        with index_write(self._db):
            # an update, not a replace: a row moved with its group keeps it (the triggers
            # delete a group only when the content or the group changes)
            self._db.execute(
                "INSERT INTO record_hashes (stream, id_hash, content_hash, line_group) "
                "SELECT stream, id_hash, content_hash, line_group FROM recent_hashes "
                "WHERE true ON CONFLICT (stream, id_hash) DO UPDATE SET "
                "content_hash = excluded.content_hash, line_group = excluded.line_group")
            self._db.execute("DELETE FROM recent_hashes")
        self.recent = 0

    def forget_ids(self, stream: int, id_hashes: Iterable[int]) -> None:
        """Delete the stored hashes of these ids: what Ometria holds for them is unknown (a
        send whose outcome was not a clean acknowledgement), so nothing may be judged
        unchanged against them. Both tables in one transaction: deleting only the newer row
        would make the older one the reference again."""
        ids = msgspec.json.encode(list(id_hashes)).decode()
        with index_write(self._db):  # record_hashes' groups: its delete trigger
            self._db.execute(_GROUPS_OF.format(table="recent_hashes", id="value"),
                             (stream, stream, ids))
            for table in ("recent_hashes", "record_hashes"):
                self._db.execute(f"DELETE FROM {table} WHERE stream = ? "
                                 "AND id_hash IN (SELECT value FROM json_each(?))", (stream, ids))

    def count(self, name: str) -> int:
        """Ids with a stored hash (an id in both tables counted once)."""
        named = "(SELECT id FROM streams WHERE job = ? AND name = ?)"
        row = self._db.execute(
            f"SELECT (SELECT count(*) FROM record_hashes WHERE stream IN {named}) + "
            f"(SELECT count(*) FROM recent_hashes r WHERE stream IN {named} AND NOT EXISTS "
            "(SELECT 1 FROM record_hashes h WHERE h.stream = r.stream "
            "AND h.id_hash = r.id_hash))",
            (self.job, name, self.job, name),
        ).fetchone()
        return int(row[0])

    def forget(self, name: str | None = None) -> None:
        """Delete the job's hashes and line groups (of one stream, or of all its streams): the
        groups first (``recent_hashes`` has no delete trigger)."""
        self.groups.forget(self.job, name)
        for table in ("recent_hashes", "record_hashes"):
            self._db.execute(
                f"DELETE FROM {table} WHERE stream IN (SELECT id FROM streams WHERE job = ? "
                "AND (? IS NULL OR name = ?))", (self.job, name, name))
