"""Which ids a complete read of a stream saw: what ``on_missing = "deactivate"`` compares with
the ids the job delivered (the change index) to find what the source removed.

One row per stream and id (``presence``): the id's 64-bit hash (the change index's), the id
itself (``[collection or null, id]`` as JSON: the deactivation needs it, the
change index keeps only hashes), the *generation* (the number of the complete read) that last
saw it, and whether it was deactivated since. ``presence_runs`` keeps, per stream, the current
generation and whether its deactivation phase is done. Both live in the state store (SQLite or
PostgreSQL), never in memory: a stream of ten million ids costs disk, not RAM.

Guarantees:

* marks are queued writes like every other, so a checkpoint written after them is durable only
  if they are: a run resumed from a checkpoint knows every id read before it;
* an id counts as *delivered* while the change index holds a hash for it (a clean
  acknowledgement of this job), so ids the job never delivered (another integration's) are never
  missing, hence never touched;
* an id seen again (``mark_seen``) is no longer ``gone``: it is compared, and sent, like any.

The tables are created on first use (``CREATE TABLE IF NOT EXISTS``): they are additive and an
older ometria-sync ignores them.
"""

from __future__ import annotations

from typing import Protocol

import asyncpg
import msgspec

from ometria_sync.state.pg_state import PostgresState
from ometria_sync.state.sqlite_sql import SqliteCheckpointStore
from ometria_sync.state.sqlite_store import SqliteState
from ometria_sync.state.store import StateStore

_SQLITE_TABLES = """
CREATE TABLE IF NOT EXISTS presence (
    stream INTEGER NOT NULL, id_hash INTEGER NOT NULL, key TEXT NOT NULL,
    seen INTEGER NOT NULL, gone INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (stream, id_hash)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS presence_runs (
    stream INTEGER PRIMARY KEY, gen INTEGER NOT NULL, done INTEGER NOT NULL)
"""
_PG_TABLES = """
CREATE TABLE IF NOT EXISTS {s}.presence (
    stream BIGINT NOT NULL, id_hash BIGINT NOT NULL, key TEXT NOT NULL,
    seen BIGINT NOT NULL, gone BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (stream, id_hash));
CREATE TABLE IF NOT EXISTS {s}.presence_runs (
    stream BIGINT PRIMARY KEY, gen BIGINT NOT NULL, done BOOLEAN NOT NULL)
"""


class Census(msgspec.Struct, frozen=True):
    """One generation's numbers: ids delivered and not deactivated (``delivered``), ids this
    read saw (``seen``), and delivered ids it did not see (``missing``)."""

    delivered: int
    seen: int
    missing: int


class PresenceIndex(Protocol):
    """The ``presence`` rows of one store (the job's streams, by change-index stream id)."""

    async def generation(self, stream: int) -> tuple[int, bool]:
        """The stream's current generation and whether its deactivation phase is done
        ((0, True) before the first read)."""
        ...

    def mark_seen(self, stream: int, gen: int, ids: list[tuple[int, str]]) -> None:
        """Queue: ``ids`` (id hash, key) were read in generation ``gen``, now open."""
        ...

    async def census(self, stream: int, gen: int) -> Census: ...

    async def gone(self, stream: int, id_hashes: list[int]) -> set[int]:
        """Those of ``id_hashes`` that were deactivated (and not seen since)."""
        ...

    async def any_gone(self, stream: int) -> bool: ...

    async def gone_keys(self, stream: int, after: int | None,
                        limit: int) -> list[tuple[int, str]]:
        """The ids deactivated and not seen since (id hash, key), by id hash after ``after``."""
        ...

    async def status(self, stream: int, id_hashes: list[int]) -> list[tuple[int, bool, int]]:
        """(generation that last saw it, gone, the stream's current generation) of those of
        ``id_hashes`` that have a row; reads only (nothing when the tables were never made)."""
        ...

    def mark_gone(self, stream: int, ids: list[tuple[int, str]]) -> None:
        """Queue: ``ids`` (id hash, key) were deleted at the source (a ``deleted_query``)."""
        ...

    async def missing(self, stream: int, gen: int, after: int | None,
                      limit: int) -> list[tuple[int, str]]:
        """Delivered ids not seen by ``gen``, not yet gone, by id hash after ``after``."""
        ...

    def close(self, stream: int, gen: int, *, deactivated: bool) -> None:
        """Queue: ``gen``'s phase is done; with ``deactivated``, its missing ids (those still
        delivered: acknowledged) are gone."""
        ...


def presence_index(state: StateStore, *, scratch: bool = False) -> PresenceIndex:
    """The presence rows of ``state`` (SQLite or PostgreSQL). With ``scratch`` (a dry run,
    ``plan``) nothing is written to them: the ids a read sees go to a temporary table of the
    store's connection, gone with it, and ``close`` and ``mark_gone`` do nothing."""
    if isinstance(state, SqliteState):
        return _SqlitePresence(state, scratch)
    assert isinstance(state, PostgresState)
    return _PgPresence(state, scratch)


_MISSING = ("FROM presence p JOIN record_hashes h ON h.stream = p.stream AND h.id_hash = p.id_hash "
            "WHERE p.stream = {a} AND {unseen} AND {not_gone}")
#: not seen by this generation: by its number, or (scratch) not in the temporary table
_UNSEEN = "p.seen < {b}"
_UNSEEN_SCRATCH = ("NOT EXISTS (SELECT 1 FROM presence_scratch s WHERE s.stream = p.stream "
                   "AND s.id_hash = p.id_hash) AND {b} = {b}")
_SCRATCH = ("CREATE TEMP TABLE IF NOT EXISTS presence_scratch (stream BIGINT NOT NULL, "
            "id_hash BIGINT NOT NULL, PRIMARY KEY (stream, id_hash))")


def _missing_sql(a: str, b: str, not_gone: str, scratch: bool) -> str:
    unseen = (_UNSEEN_SCRATCH if scratch else _UNSEEN).format(b=b)
    return _MISSING.format(a=a, unseen=unseen, not_gone=not_gone)


class _SqlitePresence:
    def __init__(self, state: SqliteState, scratch: bool) -> None:
        self._thread = state.thread
        self._scratch = scratch
        self._created = False

    async def _tables(self) -> None:
        if not self._created:
            script = _SQLITE_TABLES + (";" + _SCRATCH if self._scratch else "")
            await self._thread.call(lambda store: store.db.executescript(script))
            self._created = True

    async def generation(self, stream: int) -> tuple[int, bool]:
        await self._tables()
        row = await self._thread.call(lambda store: store.db.execute(
            "SELECT gen, done FROM presence_runs WHERE stream = ?", (stream,)).fetchone())
        return (0, True) if row is None else (int(row[0]), bool(row[1]))

    def mark_seen(self, stream: int, gen: int, ids: list[tuple[int, str]]) -> None:
        rows = msgspec.json.encode(ids).decode()
        if self._scratch:
            self._thread.submit(lambda store: store.db.execute(
                "INSERT OR IGNORE INTO presence_scratch SELECT ?, value ->> 0 FROM json_each(?)",
                (stream, rows)))
            return

        def write(store: SqliteCheckpointStore) -> None:
            store.db.execute(
                "INSERT INTO presence (stream, id_hash, key, seen) "
                "SELECT ?, value ->> 0, value ->> 1, ? FROM json_each(?) WHERE true "
                "ON CONFLICT (stream, id_hash) DO UPDATE SET seen = excluded.seen, gone = 0",
                (stream, gen, rows))
            store.db.execute("INSERT OR REPLACE INTO presence_runs VALUES (?, ?, 0)",
                             (stream, gen))

        self._thread.submit(write)

    async def census(self, stream: int, gen: int) -> Census:
        await self._tables()

        def count(store: SqliteCheckpointStore) -> Census:
            store.changes.merge()  # the joins below read record_hashes alone
            db = store.db
            delivered = db.execute(
                "SELECT count(*) FROM presence p JOIN record_hashes h ON h.stream = p.stream "
                "AND h.id_hash = p.id_hash WHERE p.stream = ? AND p.gone = 0",
                (stream,)).fetchone()[0]
            seen = db.execute(
                "SELECT count(*) FROM presence_scratch WHERE stream = ? AND ? = ?"
                if self._scratch else "SELECT count(*) FROM presence WHERE stream = ? "
                "AND seen = ?", (stream, gen) if not self._scratch else (stream, gen, gen)
            ).fetchone()[0]
            missing = db.execute("SELECT count(*) " + _missing_sql(
                "?", "?", "p.gone = 0", self._scratch),
                (stream, gen, gen) if self._scratch else (stream, gen)).fetchone()[0]
            return Census(int(delivered), int(seen), int(missing))

        return await self._thread.call(count)

    async def gone(self, stream: int, id_hashes: list[int]) -> set[int]:
        rows = msgspec.json.encode(id_hashes).decode()
        found = await self._thread.call(lambda store: store.db.execute(
            "SELECT id_hash FROM presence WHERE stream = ? AND gone = 1 "
            "AND id_hash IN (SELECT value FROM json_each(?))", (stream, rows)).fetchall())
        return {int(r[0]) for r in found}

    async def any_gone(self, stream: int) -> bool:
        await self._tables()
        return bool(await self._thread.call(lambda store: store.db.execute(
            "SELECT EXISTS (SELECT 1 FROM presence WHERE stream = ? AND gone = 1)",
            (stream,)).fetchone()[0]))

    async def gone_keys(self, stream: int, after: int | None,
                        limit: int) -> list[tuple[int, str]]:
        await self._tables()
        rows = await self._thread.call(lambda store: store.db.execute(
            "SELECT id_hash, key FROM presence WHERE stream = ? AND gone = 1 "
            "AND (? IS NULL OR id_hash > ?) ORDER BY id_hash LIMIT ?",
            (stream, after, after, limit)).fetchall())
        return [(int(h), str(k)) for h, k in rows]

    async def status(self, stream: int, id_hashes: list[int]) -> list[tuple[int, bool, int]]:
        rows = msgspec.json.encode(id_hashes).decode()

        def read(store: SqliteCheckpointStore) -> list[tuple[int, bool, int]]:
            if store.db.execute("SELECT count(*) FROM sqlite_master WHERE name = "
                                "'presence_runs'").fetchone()[0] == 0:
                return []
            found = store.db.execute(
                "SELECT p.seen, p.gone, r.gen FROM presence p JOIN presence_runs r "
                "ON r.stream = p.stream WHERE p.stream = ? AND p.id_hash IN "
                "(SELECT value FROM json_each(?))", (stream, rows)).fetchall()
            return [(int(a), bool(b), int(c)) for a, b, c in found]

        return await self._thread.call(read)

    def mark_gone(self, stream: int, ids: list[tuple[int, str]]) -> None:
        if self._scratch:
            return
        rows = msgspec.json.encode(ids).decode()
        self._thread.submit(lambda store: store.db.execute(
            "INSERT INTO presence (stream, id_hash, key, seen, gone) "
            "SELECT ?, value ->> 0, value ->> 1, 0, 1 FROM json_each(?) WHERE true "
            "ON CONFLICT (stream, id_hash) DO UPDATE SET gone = 1", (stream, rows)))

    async def missing(self, stream: int, gen: int, after: int | None,
                      limit: int) -> list[tuple[int, str]]:
        query = ("SELECT p.id_hash, p.key " + _missing_sql("?", "?", "p.gone = 0", self._scratch)
                 + " AND (? IS NULL OR p.id_hash > ?) ORDER BY p.id_hash LIMIT ?")
        gens = (gen, gen) if self._scratch else (gen,)

        def read(store: SqliteCheckpointStore) -> list[tuple[int, str]]:
            store.changes.merge()  # the join reads record_hashes alone
            return store.db.execute(query, (stream, *gens, after, after, limit)).fetchall()

        rows = await self._thread.call(read)
        return [(int(h), str(k)) for h, k in rows]

    def close(self, stream: int, gen: int, *, deactivated: bool) -> None:
        if self._scratch:
            return

        def write(store: SqliteCheckpointStore) -> None:
            if deactivated:
                store.changes.merge()  # the query below reads record_hashes alone
                store.db.execute(
                    "UPDATE presence SET gone = 1 WHERE stream = ? AND seen < ? AND gone = 0 "
                    "AND id_hash IN (SELECT id_hash FROM record_hashes WHERE stream = ?)",
                    (stream, gen, stream))
            store.db.execute("INSERT OR REPLACE INTO presence_runs VALUES (?, ?, 1)",
                             (stream, gen))

        self._thread.submit(write)


class _PgPresence:
    def __init__(self, state: PostgresState, scratch: bool) -> None:
        self._state = state
        self._schema = state.schema
        self._scratch = scratch
        self._created = False

    def _sql(self, text: str) -> str:
        return text.replace("presence", f"{self._schema}.presence").replace(
            "record_hashes", f"{self._schema}.record_hashes").replace(
            f"{self._schema}.presence_scratch", "presence_scratch")

    async def _tables(self) -> None:
        if not self._created:
            tables = _PG_TABLES.format(s=self._schema) + (";" + _SCRATCH if self._scratch
                                                          else "")
            await self._state.call(lambda conn: conn.execute(tables))
            self._created = True

    async def generation(self, stream: int) -> tuple[int, bool]:
        await self._tables()
        query = self._sql("SELECT gen, done FROM presence_runs WHERE stream = $1")
        row = await self._state.call(lambda conn: conn.fetchrow(query, stream))
        return (0, True) if row is None else (int(row[0]), bool(row[1]))

    def mark_seen(self, stream: int, gen: int, ids: list[tuple[int, str]]) -> None:
        hashes = [i[0] for i in ids]
        keys = [i[1] for i in ids]
        if self._scratch:
            self._state.submit(lambda conn: conn.execute(
                "INSERT INTO presence_scratch SELECT $1, h FROM unnest($2::bigint[]) AS u(h) "
                "ON CONFLICT DO NOTHING", stream, hashes))
            return
        upsert = self._sql(
            "INSERT INTO presence (stream, id_hash, key, seen) "
            "SELECT $1, h, k, $2 FROM unnest($3::bigint[], $4::text[]) AS u(h, k) "
            "ON CONFLICT (stream, id_hash) DO UPDATE SET seen = excluded.seen, gone = FALSE")
        run = self._sql("INSERT INTO presence_runs VALUES ($1, $2, FALSE) ON CONFLICT (stream) "
                        "DO UPDATE SET gen = excluded.gen, done = FALSE")

        async def write(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                await conn.execute(upsert, stream, gen, hashes, keys)
                await conn.execute(run, stream, gen)

        self._state.submit(write)

    async def census(self, stream: int, gen: int) -> Census:
        await self._tables()
        query = self._sql(
            "SELECT (SELECT count(*) FROM presence p JOIN record_hashes h ON h.stream = p.stream "
            "AND h.id_hash = p.id_hash WHERE p.stream = $1 AND NOT p.gone), "
            + ("(SELECT count(*) FROM presence_scratch WHERE stream = $1 AND $2::bigint = $2), "
               if self._scratch else
               "(SELECT count(*) FROM presence WHERE stream = $1 AND seen = $2), ")
            + "(SELECT count(*) " + _missing_sql("$1", "$2::bigint", "NOT p.gone", self._scratch)
            + ")")
        row = await self._state.call(lambda conn: conn.fetchrow(query, stream, gen))
        return Census(int(row[0]), int(row[1]), int(row[2]))

    async def gone(self, stream: int, id_hashes: list[int]) -> set[int]:
        query = self._sql("SELECT id_hash FROM presence WHERE stream = $1 AND gone "
                          "AND id_hash = ANY($2::bigint[])")
        rows = await self._state.call(lambda conn: conn.fetch(query, stream, id_hashes))
        return {int(r[0]) for r in rows}

    async def any_gone(self, stream: int) -> bool:
        await self._tables()
        query = self._sql("SELECT EXISTS (SELECT 1 FROM presence WHERE stream = $1 AND gone)")
        return bool(await self._state.call(lambda conn: conn.fetchval(query, stream)))

    async def gone_keys(self, stream: int, after: int | None,
                        limit: int) -> list[tuple[int, str]]:
        await self._tables()
        query = self._sql("SELECT id_hash, key FROM presence WHERE stream = $1 AND gone "
                          "AND ($2::bigint IS NULL OR id_hash > $2) ORDER BY id_hash LIMIT $3")
        rows = await self._state.call(lambda conn: conn.fetch(query, stream, after, limit))
        return [(int(r[0]), str(r[1])) for r in rows]

    async def status(self, stream: int, id_hashes: list[int]) -> list[tuple[int, bool, int]]:
        exists = f"SELECT to_regclass('{self._schema}.presence_runs') IS NOT NULL"
        query = self._sql("SELECT p.seen, p.gone, r.gen FROM presence p JOIN presence_runs r "
                          "ON r.stream = p.stream WHERE p.stream = $1 "
                          "AND p.id_hash = ANY($2::bigint[])")

        async def read(conn: asyncpg.Connection) -> list[tuple[int, bool, int]]:
            if not await conn.fetchval(exists):
                return []
            return [(int(r[0]), bool(r[1]), int(r[2]))
                    for r in await conn.fetch(query, stream, id_hashes)]

        return await self._state.call(read)

    def mark_gone(self, stream: int, ids: list[tuple[int, str]]) -> None:
        if self._scratch:
            return
        query = self._sql(
            "INSERT INTO presence (stream, id_hash, key, seen, gone) "
            "SELECT $1, h, k, 0, TRUE FROM unnest($2::bigint[], $3::text[]) AS u(h, k) "
            "ON CONFLICT (stream, id_hash) DO UPDATE SET gone = TRUE")
        hashes, keys = [i[0] for i in ids], [i[1] for i in ids]
        self._state.submit(lambda conn: conn.execute(query, stream, hashes, keys))

    async def missing(self, stream: int, gen: int, after: int | None,
                      limit: int) -> list[tuple[int, str]]:
        query = self._sql("SELECT p.id_hash, p.key " + _missing_sql(
            "$1", "$2::bigint", "NOT p.gone", self._scratch)
            + " AND ($3::bigint IS NULL OR p.id_hash > $3) ORDER BY p.id_hash LIMIT $4")
        rows = await self._state.call(lambda conn: conn.fetch(query, stream, gen, after, limit))
        return [(int(r[0]), str(r[1])) for r in rows]

    def close(self, stream: int, gen: int, *, deactivated: bool) -> None:
        if self._scratch:
            return
        gone = self._sql(
            "UPDATE presence SET gone = TRUE WHERE stream = $1 AND seen < $2 AND NOT gone "
            "AND id_hash IN (SELECT id_hash FROM record_hashes WHERE stream = $1)")
        run = self._sql("INSERT INTO presence_runs VALUES ($1, $2, TRUE) ON CONFLICT (stream) "
                        "DO UPDATE SET gen = excluded.gen, done = TRUE")

        async def write(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                if deactivated:
                    await conn.execute(gone, stream, gen)
                await conn.execute(run, stream, gen)

        self._state.submit(write)
