"""Groups of source lines Ometria holds as they are (schema version 6), SQLite then PostgreSQL.

A nightly full export repeats millions of lines byte for byte. The pipeline reads such a file
as groups of raw lines (``pipeline/line_groups.py``) and keeps, per stream, one row per group
whose every record Ometria acknowledged: the hash of the group's bytes (and of everything that
shapes a record from a line) and its records' id hashes. A group read again is skipped without
decoding when its row is here.

**Why a row here is always true.** Each record of a kept group points to it from its row in
the change index (``record_hashes.line_group``), set only where the stored content hash is the
group's record's (:meth:`SqliteLineGroups.keep`, one transaction; a group whose every record
does not point to it is not kept). Triggers on ``record_hashes`` delete a group as soon as one
of its records' rows is deleted, or changes content or group: whoever writes the change index
(a later version acknowledged, A -> B -> A; a hash forgotten after an unclear answer; a reset;
a row replaced, with ``recursive_triggers`` on so that ``INSERT OR REPLACE`` counts as a
delete), the groups holding the old version are gone in the same transaction. The index's side
table of recent hashes (``recent_hashes``, ``change_index_sql.py``) keeps this by its own
trigger (a row changing content or group) and by the writes that supersede or delete its rows
(which delete the groups in their transaction), and a group is kept only where each id's
effective row points to it. So a group row
says: every one of these lines is the version Ometria acknowledged last for its id.

``seen`` is the marker of the last run that read or wrote the group: a run that read the
stream's only part whole deletes the rows it did not see (:meth:`SqliteLineGroups.prune`), so
the table follows the export instead of growing with every change. Ids are kept as one BLOB of
native 64-bit integers (SQLite) or a ``bigint[]`` (PostgreSQL).
"""

from __future__ import annotations

import sqlite3
from array import array
from collections.abc import Iterable, Sequence

import msgspec

from ometria_sync.errors import StateError
from ometria_sync.state.sqlite_tx import index_write
from ometria_sync.state.store import GroupRow, Pointed

#: version 6 (:func:`migrate_line_groups`)
V6 = (
    "ALTER TABLE record_hashes ADD COLUMN line_group INTEGER",
    "CREATE TABLE IF NOT EXISTS line_groups (stream INTEGER NOT NULL, "
    "group_hash INTEGER NOT NULL, ids BLOB NOT NULL, seen INTEGER NOT NULL, "
    "PRIMARY KEY (stream, group_hash)) WITHOUT ROWID",
    "CREATE TRIGGER IF NOT EXISTS line_group_deleted AFTER DELETE ON record_hashes "
    "WHEN OLD.line_group IS NOT NULL BEGIN DELETE FROM line_groups "
    "WHERE stream = OLD.stream AND group_hash = OLD.line_group; END",
    "CREATE TRIGGER IF NOT EXISTS line_group_changed AFTER UPDATE ON record_hashes "
    "WHEN OLD.line_group IS NOT NULL AND (NEW.content_hash != OLD.content_hash "
    "OR NEW.line_group IS NOT OLD.line_group) BEGIN DELETE FROM line_groups "
    "WHERE stream = OLD.stream AND group_hash = OLD.line_group; END",
)


def migrate_line_groups(db: sqlite3.Connection) -> None:
    """Version 6, in the migration's transaction (the column only where it is missing)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(record_hashes)")}
    for statement in V6[1:] if "line_group" in columns else V6:
        db.execute(statement)


def _json(values: object) -> str:
    return msgspec.json.encode(values).decode()


def _ids(blob: bytes) -> array[int]:
    ids = array("q")
    ids.frombytes(blob)
    return ids


class SqliteLineGroups:
    """The ``line_groups`` table of one store's connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        db.execute("PRAGMA recursive_triggers = ON")  # a REPLACE deletes: its trigger fires

    def any(self, stream: int) -> bool:
        """Whether the stream has a kept group."""
        return bool(self._db.execute("SELECT EXISTS (SELECT 1 FROM line_groups WHERE stream = ?)",
                                     (stream,)).fetchone()[0])

    def held(self, stream: int, group_hashes: list[int]) -> dict[int, Sequence[int]]:
        """The groups among ``group_hashes`` that are kept: group hash -> its records' ids."""
        try:
            rows = self._db.execute(
                "SELECT group_hash, ids FROM line_groups WHERE stream = ? "
                "AND group_hash IN (SELECT value FROM json_each(?))",
                (stream, _json(group_hashes))).fetchall()
        except sqlite3.Error as exc:
            raise StateError(f"change index: cannot read: {exc}") from None
        return {g: _ids(blob) for g, blob in rows}

    def keep(self, stream: int, marker: int, groups: list[GroupRow],
             seen: Iterable[int], pointed: Sequence[Pointed] = ()) -> None:
        """Keep ``groups`` whose every record's stored content is still theirs (pointing their
        rows to them), and ``pointed`` groups (their rows point to them already: written so
        by the ``remember`` just before), and mark ``seen`` groups as read by the run
        ``marker``; one transaction."""
        with index_write(self._db):
            if groups:
                self._keep(stream, marker, groups)
            self._db.executemany(
                "INSERT OR REPLACE INTO line_groups VALUES (?, ?, ?, ?)",
                [(stream, g, array("q", ids).tobytes(), marker) for g, ids in pointed])
            seen = list(seen)
            if seen:
                self._db.execute(
                    "UPDATE line_groups SET seen = ? WHERE stream = ? "
                    "AND group_hash IN (SELECT value FROM json_each(?))",
                    (marker, stream, _json(seen)))

    def _keep(self, stream: int, marker: int, groups: list[GroupRow]) -> None:
        # one statement per group: its ids, and its contents (a content hash is of a record
        # holding its id, so it matches no other id's row; a group holds an id once); in both
        # tables of the change index, each id's effective row only (``change_index_sql.py``)
        rows = [(g, stream, _json(ids), _json(contents)) for g, ids, contents in groups]
        pointed = self._db.executemany(
            "UPDATE recent_hashes SET line_group = ? WHERE stream = ? "
            "AND id_hash IN (SELECT value FROM json_each(?)) "
            "AND content_hash IN (SELECT value FROM json_each(?))", rows).rowcount
        pointed += self._db.executemany(
            "UPDATE record_hashes SET line_group = ? WHERE stream = ? "
            "AND id_hash IN (SELECT value FROM json_each(?)) "
            "AND content_hash IN (SELECT value FROM json_each(?)) AND NOT EXISTS (SELECT 1 "
            "FROM recent_hashes r WHERE r.stream = record_hashes.stream "
            "AND r.id_hash = record_hashes.id_hash)", rows).rowcount
        if pointed != sum(len(ids) for _, ids, _ in groups):  # content moved on, or an id twice
            asked = _json([i for _, ids, _ in groups for i in ids])
            points = {i: g for i, g, _ in self._db.execute(  # recent_hashes' rows win
                "SELECT id_hash, line_group, 0 AS p FROM record_hashes WHERE stream = ? "
                "AND id_hash IN (SELECT value FROM json_each(?)) UNION ALL SELECT id_hash, "
                "line_group, 1 FROM recent_hashes WHERE stream = ? "
                "AND id_hash IN (SELECT value FROM json_each(?)) ORDER BY p",
                (stream, asked, stream, asked))}
            groups = [(g, ids, c) for g, ids, c in groups if all(points.get(i) == g for i in ids)]
        self._db.executemany(
            "INSERT OR REPLACE INTO line_groups VALUES (?, ?, ?, ?)",
            [(stream, g, array("q", ids).tobytes(), marker) for g, ids, _ in groups])

    def prune(self, stream: int, marker: int) -> None:
        """Delete the stream's groups the run ``marker`` neither read nor wrote."""
        try:
            self._db.execute("DELETE FROM line_groups WHERE stream = ? AND seen != ?",
                             (stream, marker))
        except sqlite3.Error as exc:
            raise StateError(f"change index: cannot write: {exc}") from None

    def forget(self, job: str, name: str | None = None) -> None:
        """Delete the job's groups (of one stream, or of all its streams)."""
        self._db.execute(
            "DELETE FROM line_groups WHERE stream IN (SELECT id FROM streams WHERE job = ? "
            "AND (? IS NULL OR name = ?))", (job, name, name))


# -------------------------------------------------------------------------------------------------
# PostgreSQL side: the same table, members as two bigint arrays; a group is valid when the
# count of its members whose pair equals the change index's row is its size (one round trip).
# -------------------------------------------------------------------------------------------------

#: version 6 of the PostgreSQL schema (``pg_schema.MIGRATIONS``)
PG_V6 = """
ALTER TABLE {s}.record_hashes ADD COLUMN IF NOT EXISTS line_group bigint;
CREATE TABLE IF NOT EXISTS {s}.line_groups (
    stream integer NOT NULL, group_hash bigint NOT NULL, ids bigint[] NOT NULL,
    seen bigint NOT NULL, PRIMARY KEY (stream, group_hash));
CREATE OR REPLACE FUNCTION {s}.line_group_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {s}.line_groups WHERE stream = OLD.stream AND group_hash = OLD.line_group;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER line_group_deleted AFTER DELETE ON {s}.record_hashes FOR EACH ROW
    WHEN (OLD.line_group IS NOT NULL) EXECUTE FUNCTION {s}.line_group_gone();
CREATE OR REPLACE TRIGGER line_group_changed AFTER UPDATE ON {s}.record_hashes FOR EACH ROW
    WHEN (OLD.line_group IS NOT NULL AND (NEW.content_hash <> OLD.content_hash
          OR NEW.line_group IS DISTINCT FROM OLD.line_group))
    EXECUTE FUNCTION {s}.line_group_gone();
"""


def pg_held(schema: str) -> str:
    """The query of kept groups: ``$1`` the stream, ``$2`` the group hashes."""
    return (f"SELECT group_hash, ids FROM {schema}.line_groups "
            "WHERE stream = $1 AND group_hash = ANY($2::bigint[])")


def pg_keep(schema: str) -> tuple[str, str, str, str]:
    """The statements of :meth:`SqliteLineGroups.keep`, for PostgreSQL: point the rows
    (``$1`` stream, ``$2`` ids, ``$3`` contents, ``$4`` groups), read the pointers back
    (``$1``, ``$2``), store a group (``$1``, hash, ids, marker), mark groups seen (``$1``,
    ``$2`` marker, ``$3`` hashes)."""
    return (f"UPDATE {schema}.record_hashes r SET line_group = u.g FROM unnest($2::bigint[], "
            "$3::bigint[], $4::bigint[]) AS u(i, c, g) WHERE r.stream = $1 AND r.id_hash = u.i "
            "AND r.content_hash = u.c",
            f"SELECT id_hash, line_group FROM {schema}.record_hashes WHERE stream = $1 "
            "AND id_hash = ANY($2::bigint[])",
            f"INSERT INTO {schema}.line_groups VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (stream, group_hash) DO UPDATE SET ids = excluded.ids, "
            "seen = excluded.seen",
            f"UPDATE {schema}.line_groups SET seen = $2 WHERE stream = $1 "
            "AND group_hash = ANY($3::bigint[])")
