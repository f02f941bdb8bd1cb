"""The state in PostgreSQL: :class:`StateStore` with asyncpg on the event loop.

Tables in ``state.schema`` (see ``pg_schema.py``), every row the job's (``job``: the store is
opened for one job and reads and writes only its rows); writes go through the ordered queue of
``pg_queue.py`` (a lost connection is reconnected and the statement retried), lookups through
the reader connection. A lookup or a hash write is one round trip per batch (``unnest`` of
arrays, a first run's new ids copied in), never one per record; a lookup probes the primary
key once per id it asks about, whatever plan the server caches (``lookup_query``). The run lock
holds a third connection (``pg_lock.py``).

Every write is idempotent or one transaction, so a retry after a lost connection doubles
nothing: a checkpoint whose commit was lost in flight and is saved again finds its own position
already stored and is left alone; dead-letter rows carry a key made when they are submitted, so
a retried insert finds them there and adds none. After the last retry the run stops with
:class:`~ometria_sync.state.pg_queue.StateConnectionLost`: what was acknowledged and not yet
checkpointed is resent by the next run, never lost.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from operator import itemgetter
from typing import Any

import asyncpg
import msgspec

from ometria_sync.errors import StateError
from ometria_sync.pacing import SendPermit
from ometria_sync.state.line_groups_sql import pg_held, pg_keep
from ometria_sync.state.pg_lock import PgRunLock, lock_held
from ometria_sync.state.pg_queue import Op, PgQueue, StateConnectionLost
from ometria_sync.state.pg_schema import adopt_legacy, migrate
from ometria_sync.state.run_history import pg_add_run_report, pg_run_reports
from ometria_sync.state.store import (
    AccountIdentity,
    Checkpoint,
    CleanVerify,
    DeadLetterRow,
    GroupRow,
    LedgerEntry,
    Pending,
    Pointed,
    StreamRun,
    check_schema,
    checked_total,
    group_weight,
    mismatch,
    utc_now,
)
from ometria_sync.state.written_ids import WrittenIds

__all__ = ["PostgresState", "StateConnectionLost", "forget_query", "lookup_query"]
_PAGE = 1000
#: bits of the second bitmap of ids written (2 MB a stream whose first run this is)
SECOND_BITS = 1 << 24
#: the columns of a copied change hash
_HASH_COLUMNS = ("stream", "id_hash", "content_hash", "line_group")
#: a change hash's row: stream, id hash, content hash, line group; and its id hash
_Row = tuple[int, int, int, int | None]
_ID_HASH = itemgetter(1)
_LEDGER = ("stream, key, reason, content_hash, first_run, first_seen, last_run, last_seen, "
           "attempts, kind, payload")


class PostgresState(PgQueue):
    """A :class:`~ometria_sync.state.store.StateStore` in a PostgreSQL schema."""

    def __init__(self, url: str, schema: str, job: str = "") -> None:
        super().__init__(url, check_schema(schema))
        #: the job whose rows this store reads and writes ('': rows of no named job)
        self.job = job
        #: ids a lookup need not ask about (``written_ids.py``); a lookup is a round trip
        #: here, so a second bitmap saves most of a first run's
        self._written = WrittenIds(second_bits=SECOND_BITS)

    @classmethod
    async def open(cls, url: str, schema: str, job: str = "",
                   streams: Sequence[str] = ()) -> PostgresState:
        """The state of ``job`` in ``schema``; it adopts rows of ``streams`` written before
        state was keyed by the job (see :func:`~ometria_sync.state.pg_schema.adopt_legacy`)."""
        state = cls(url, schema, job)
        try:
            conn = await state._conn("writer")
            await migrate(conn, schema, state.label)
            await adopt_legacy(conn, schema, job, list(streams))
        except BaseException:
            await state._close_connections()
            raise
        state.start()
        return state

    # checkpoints and runs -----------------------------------------------------------------

    def _t(self, table: str) -> str:
        return f"{self.schema}.{table}"

    async def load(self, stream: str, part: str) -> Checkpoint | None:
        return await self.call(lambda conn: self._load(conn, stream, part))

    async def _load(self, conn: asyncpg.Connection, stream: str, part: str,
                    lock: str = "") -> Checkpoint | None:
        row = await conn.fetchrow(
            "SELECT stream, part, position, fingerprint, delivered, updated_at "
            f"FROM {self._t('checkpoints')} WHERE job = $3 AND stream = $1 AND part = $2 {lock}",
            stream, part, self.job)
        return None if row is None else self._checkpoint(row)

    def _checkpoint(self, row: asyncpg.Record) -> Checkpoint:
        try:
            position = msgspec.json.decode(row["position"])
        except msgspec.DecodeError:
            raise StateError(f"checkpoint store {self.label}: position of stream "
                             f"{row['stream']!r} is unreadable") from None
        return Checkpoint(row["stream"], row["part"], position, row["fingerprint"],
                          row["delivered"], row["updated_at"])

    def save(self, stream: str, part: str, position: Any, fingerprint: str | None,
             delivered: int) -> None:
        async def op(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                old = await self._load(conn, stream, part, "FOR UPDATE")
                if old is not None and (old.position, old.fingerprint) == (
                        msgspec.json.decode(msgspec.json.encode(position)), fingerprint):
                    return  # a retry of a save whose commit got through: counted already
                total = checked_total(stream, old, position, fingerprint, delivered)
                await conn.execute(
                    f"INSERT INTO {self._t('checkpoints')} (stream, part, position, fingerprint, "
                    "delivered, updated_at, job) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                    "ON CONFLICT (job, stream, part) DO UPDATE SET position = excluded.position, "
                    "fingerprint = excluded.fingerprint, delivered = excluded.delivered, "
                    "updated_at = excluded.updated_at",
                    stream, part, msgspec.json.encode(position).decode(), fingerprint, total,
                    utc_now(), self.job)

        self.submit(op)

    async def restart(self, stream: str, part: str) -> None:
        await self.call(lambda conn: conn.execute(
            f"DELETE FROM {self._t('checkpoints')} WHERE job = $3 AND stream = $1 AND part = $2",
            stream, part, self.job))

    async def start_run(self, stream: str) -> None:
        await self.call(lambda conn: conn.execute(
            f"INSERT INTO {self._t('stream_runs')} (stream, started_at, finished_at, outcome, "
            "delivered, job) VALUES ($1, $2, NULL, 'running', 0, $3) "
            "ON CONFLICT (job, stream) DO UPDATE SET started_at = excluded.started_at, "
            "finished_at = NULL, outcome = excluded.outcome, delivered = 0", stream, utc_now(),
            self.job))

    async def finish_run(self, stream: str, outcome: str, delivered: int) -> None:
        await self.call(lambda conn: conn.execute(
            f"UPDATE {self._t('stream_runs')} SET finished_at = $2, outcome = $3, "
            "delivered = $4 WHERE job = $5 AND stream = $1", stream, utc_now(), outcome,
            delivered, self.job))

    async def checkpoints(self, stream: str | None = None) -> list[Checkpoint]:
        rows = await self.call(lambda conn: conn.fetch(
            "SELECT stream, part, position, fingerprint, delivered, updated_at "
            f"FROM {self._t('checkpoints')} WHERE job = $2 AND ($1::text IS NULL OR stream = $1) "
            "ORDER BY stream, part", stream, self.job))
        return [self._checkpoint(r) for r in rows]

    async def last_run(self, stream: str) -> StreamRun | None:
        row = await self.call(lambda conn: conn.fetchrow(
            "SELECT stream, started_at, finished_at, outcome, delivered "
            f"FROM {self._t('stream_runs')} WHERE job = $2 AND stream = $1", stream, self.job))
        return None if row is None else StreamRun(*row)

    async def reset(self, stream: str | None = None) -> int:
        async def op(conn: asyncpg.Connection) -> int:
            async with conn.transaction():
                where = "WHERE job = $2 AND ($1::text IS NULL OR stream = $1)"
                removed = await conn.fetchval(
                    f"WITH d AS (DELETE FROM {self._t('checkpoints')} {where} RETURNING 1) "
                    "SELECT count(*) FROM d", stream, self.job)
                await conn.execute(f"DELETE FROM {self._t('stream_runs')} {where}", stream,
                                   self.job)
                await conn.execute(f"DELETE FROM {self._t('dead_letters')} {where}", stream,
                                   self.job)
                await conn.execute(f"DELETE FROM {self._t('ledger')} {where}", stream, self.job)
                for table in ("line_groups", "record_hashes"):
                    await conn.execute(
                        f"DELETE FROM {self._t(table)} WHERE stream IN (SELECT id FROM "
                        f"{self._t('streams')} WHERE job = $2 AND ($1::text IS NULL OR "
                        "name = $1))", stream, self.job)
                if stream is None:
                    await conn.execute(f"DELETE FROM {self._t('account')} WHERE job = $1",
                                       self.job)
                    await conn.execute(f"DELETE FROM {self._t('clean_verifies')} WHERE "
                                       "job = $1", self.job)
                return int(removed)

        return await self.call(op, bounded=False)  # millions of hashes may take a while

    # change hashes -------------------------------------------------------------------------

    async def stream_id(self, name: str) -> int:
        async def op(conn: asyncpg.Connection) -> tuple[int, bool]:
            await conn.execute(f"INSERT INTO {self._t('streams')} (name, job) VALUES ($1, $2) "
                               "ON CONFLICT (job, name) DO NOTHING", name, self.job)
            stream = int(await conn.fetchval(
                f"SELECT id FROM {self._t('streams')} WHERE job = $2 AND name = $1", name,
                self.job))
            held = await conn.fetchval(
                f"SELECT EXISTS (SELECT 1 FROM {self._t('record_hashes')} WHERE stream = $1)",
                stream)
            return stream, bool(held)

        stream, held = await self.call(op)
        self._written.named(stream, empty=not held)
        return stream

    async def lookup(self, stream_id: int, id_hashes: list[int]) -> dict[int, int]:
        """Stored content hashes of those ids that are known: one round trip (none when no
        id can be stored: ``written_ids.py``)."""
        self._raise_failure()
        id_hashes = self._written.may_hold(stream_id, id_hashes)
        if not id_hashes:
            return {}
        query = lookup_query(self.schema)
        async with self._reading:
            rows = await self._run("reader", lambda conn: conn.fetch(query, stream_id, id_hashes))
        return {r[0]: r[1] for r in rows}

    def remember(self, stream_id: int, pairs: list[tuple[int, int]],
                 groups: list[int] | None = None) -> Pending:
        """Store (id hash, content hash) pairs, one per id (the caller dedupes): one write.

        Ids the index cannot hold yet (``WrittenIds.new_written``: nearly all of a first
        run's) are copied in, in id order: a plain insert, without an upsert's conflict check
        per row (about half the server's work). The others are upserted in one statement. A
        retry of a write whose commit got through finds its copied rows there: the copy is
        undone (a savepoint) and the whole write upserted instead, so nothing is doubled."""
        # sorted by id with a C key: a Python key function was half the client's time here
        if groups is None:
            rows: list[_Row] = sorted([(stream_id, i, c, None) for i, c in pairs], key=_ID_HASH)
        else:
            rows = sorted([(stream_id, i, c, g or None) for (i, c), g
                           in zip(pairs, groups, strict=True)], key=_ID_HASH)
        new = self._written.new_written(stream_id, [r[1] for r in rows])
        if all(new):
            copied, upserted = rows, []
        else:
            copied = [r for r, n in zip(rows, new, strict=True) if n]
            upserted = [r for r, n in zip(rows, new, strict=True) if not n]

        async def op(conn: asyncpg.Connection) -> None:
            if copied:
                try:
                    async with conn.transaction():
                        await conn.copy_records_to_table(
                            "record_hashes", schema_name=self.schema, columns=_HASH_COLUMNS,
                            records=copied)
                except asyncpg.UniqueViolationError:  # a retry: this write committed before
                    await self._upsert(conn, rows)
                    return
            if upserted:
                await self._upsert(conn, upserted)

        return self.submit(op, len(pairs))

    async def _upsert(self, conn: asyncpg.Connection,
                      rows: list[_Row]) -> None:
        """Insert or replace these (stream, id hash, content hash, line group) rows."""
        await conn.execute(
            f"INSERT INTO {self._t('record_hashes')} (stream, id_hash, content_hash, line_group) "
            "SELECT $1, i, c, g FROM unnest($2::bigint[], $3::bigint[], $4::bigint[]) "
            "AS u(i, c, g) ORDER BY i ON CONFLICT (stream, id_hash) DO UPDATE SET "
            "content_hash = excluded.content_hash, line_group = excluded.line_group",
            rows[0][0], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows])

    def forget_ids(self, stream_id: int, id_hashes: list[int]) -> None:
        """Delete these ids' hashes: a statement per id, sent together (``forget_query``)."""
        query = forget_query(self.schema)
        rows = [(stream_id, h) for h in id_hashes]
        self.submit(lambda conn: conn.executemany(query, rows), len(id_hashes))

    async def held_groups(self, stream_id: int,
                          group_hashes: list[int]) -> dict[int, Sequence[int]]:
        """The valid groups among ``group_hashes`` (``line_groups_sql.py``): one round trip."""
        self._raise_failure()
        query = pg_held(self.schema)
        async with self._reading:
            rows = await self._run("reader", lambda conn: conn.fetch(query, stream_id,
                                                                     group_hashes))
        return {r[0]: r[1] for r in rows}

    def keep_groups(self, stream_id: int, marker: int, groups: list[GroupRow],
                    seen: list[int], pointed: Sequence[Pointed] = ()) -> None:
        """As SQLite's (``line_groups_sql.py``): one transaction."""
        point, read_back, insert, update = pg_keep(self.schema)

        async def op(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                if groups:
                    await self._keep(conn, stream_id, marker, groups, point, read_back, insert)
                if pointed:
                    await conn.executemany(insert, [(stream_id, g, ids, marker)
                                                    for g, ids in pointed])
                if seen:
                    await conn.execute(update, stream_id, marker, seen)

        self.submit(op, group_weight(groups, seen, pointed))

    @staticmethod
    async def _keep(conn: asyncpg.Connection, stream_id: int, marker: int,
                    groups: list[GroupRow], point: str, read_back: str, insert: str) -> None:
        ids = [i for _, group_ids, _ in groups for i in group_ids]
        contents = [c for _, _, group_contents in groups for c in group_contents]
        tags = [g for g, group_ids, _ in groups for _ in group_ids]
        status = await conn.execute(point, stream_id, ids, contents, tags)
        if int(status.split()[-1]) != len(ids):  # some content moved on, or an id twice
            points = dict(await conn.fetch(read_back, stream_id, ids))
            groups = [(g, i, c) for g, i, c in groups if all(points.get(x) == g for x in i)]
        await conn.executemany(insert, [(stream_id, g, i, marker) for g, i, _ in groups])

    def prune_groups(self, stream_id: int, marker: int) -> None:
        self.submit(lambda conn: conn.execute(
            f"DELETE FROM {self._t('line_groups')} WHERE stream = $1 AND seen != $2",
            stream_id, marker))

    async def tracked_ids(self, stream: str) -> int:
        return int(await self.call(lambda conn: conn.fetchval(
            f"SELECT count(*) FROM {self._t('record_hashes')} h JOIN {self._t('streams')} s "
            "ON s.id = h.stream WHERE s.job = $2 AND s.name = $1", stream, self.job)))

    # account, dead letters, run lock ---------------------------------------------------------

    async def account(self) -> AccountIdentity | None:
        row = await self.call(lambda conn: conn.fetchrow(
            f"SELECT base_url, key_sha256 FROM {self._t('account')} WHERE job = $1", self.job))
        return None if row is None else AccountIdentity(row[0], row[1])

    async def claim_account(self, current: AccountIdentity) -> bool:
        async def op(conn: asyncpg.Connection) -> tuple[bool, asyncpg.Record]:
            async with conn.transaction():
                status = await conn.execute(
                    f"INSERT INTO {self._t('account')} (job, base_url, key_sha256, "
                    "recorded_at) VALUES ($4, $1, $2, $3) ON CONFLICT (job) DO NOTHING",
                    current.base_url, current.key_sha256, utc_now(), self.job)
                row = await conn.fetchrow(
                    f"SELECT base_url, key_sha256 FROM {self._t('account')} WHERE job = $1",
                    self.job)
                return status.endswith(" 1"), row

        recorded, row = await self.call(op)
        stored = AccountIdentity(row[0], row[1])
        if stored != current:
            raise mismatch(stored, current)
        return recorded

    def add_dead_letters(self, rows: list[DeadLetterRow]) -> None:
        """One statement; each row gets its key now, so a retry of this write (its commit's
        reply lost) finds the rows it committed and adds none."""
        columns = [list(c) for c in zip(*rows, strict=True)]
        batch = uuid.uuid4().hex
        keys = [f"{batch}-{i}" for i in range(len(rows))]
        self.submit(lambda conn: conn.execute(
            f"INSERT INTO {self._t('dead_letters')} (job, run_id, stream, time, entry, row_key) "
            "SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], "
            "$6::text[]) ON CONFLICT (row_key) DO NOTHING", self.job, *columns, keys))

    async def dead_letters(
        self, stream: str | None = None, run_id: str | None = None
    ) -> AsyncIterator[bytes]:
        after = 0
        while True:
            page = await self.call(_fetch(
                f"SELECT id, entry FROM {self._t('dead_letters')} WHERE job = $5 AND id > $1 "
                "AND ($2::text IS NULL OR stream = $2) AND ($3::text IS NULL OR run_id = $3) "
                "ORDER BY id LIMIT $4", after, stream, run_id, _PAGE, self.job))
            for row in page:
                after = row[0]
                yield row[1].encode()
            if len(page) < _PAGE:
                return

    # the ledger -----------------------------------------------------------------------------

    def put_ledger(self, rows: list[LedgerEntry]) -> Pending:
        """Write these rows whole (one statement; idempotent, so a retry doubles nothing)."""
        columns = [list(c) for c in zip(*(msgspec.structs.astuple(r) for r in rows),
                                        strict=True)]
        return self.submit(lambda conn: conn.execute(
            f"INSERT INTO {self._t('ledger')} (job, {_LEDGER}) SELECT $1, * FROM unnest("
            "$2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[], "
            "$8::text[], $9::text[], $10::integer[], $11::text[], $12::text[]) "
            "ON CONFLICT (job, stream, key) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in _LEDGER.split(", ")[2:]),
            self.job, *columns))

    def drop_ledger(self, stream: str, keys: list[str]) -> Pending:
        return self.submit(lambda conn: conn.execute(
            f"DELETE FROM {self._t('ledger')} WHERE job = $1 AND stream = $2 "
            "AND key = ANY($3::text[])", self.job, stream, keys))

    async def ledger(self, stream: str | None = None, key: str | None = None, *,
                     unsent: bool = False) -> list[LedgerEntry]:
        rows = await self.call(_fetch(
            f"SELECT {_LEDGER} FROM {self._t('ledger')} WHERE job = $1 "
            "AND ($2::text IS NULL OR stream = $2) AND ($3::text IS NULL OR key = $3) "
            "AND (NOT $4 OR kind <> 'refused') ORDER BY stream, key",
            self.job, stream, key, unsent))
        return [LedgerEntry(*row) for row in rows]

    async def ledger_lookup(self, stream: str, keys: list[str]) -> list[LedgerEntry]:
        """The stream's rows of those ``keys`` that have one: one round trip, committed rows
        only (like ``lookup``)."""
        self._raise_failure()
        query = (f"SELECT {_LEDGER} FROM {self._t('ledger')} WHERE job = $1 AND stream = $2 "
                 "AND key = ANY($3::text[])")
        async with self._reading:
            rows = await self._run("reader", lambda conn: conn.fetch(query, self.job, stream,
                                                                     keys))
        return [LedgerEntry(*row) for row in rows]

    async def ledger_keys(self, stream: str, after: str = "",
                          limit: int = _PAGE) -> list[str]:
        rows = await self.call(_fetch(
            f"SELECT key FROM {self._t('ledger')} WHERE job = $1 AND stream = $2 "
            "AND key > $3 ORDER BY key LIMIT $4", self.job, stream, after, limit))
        return [row[0] for row in rows]

    async def record_clean_verify(self, at: str, errors: list[str]) -> None:
        await self.call(lambda conn: conn.execute(
            f"INSERT INTO {self._t('clean_verifies')} VALUES ($1, $2, $3) ON CONFLICT (job) "
            "DO UPDATE SET verified_at = excluded.verified_at, errors = excluded.errors",
            self.job, at, msgspec.json.encode(errors).decode()))

    async def last_clean_verify(self) -> CleanVerify | None:
        row = await self.call(lambda conn: conn.fetchrow(
            f"SELECT verified_at, errors FROM {self._t('clean_verifies')} WHERE job = $1",
            self.job))
        return None if row is None else CleanVerify(row[0], msgspec.json.decode(row[1]))

    # run reports ---------------------------------------------------------------------------

    def add_run_report(self, run_id: str, started_at: str, report: bytes) -> None:
        self.submit(lambda conn: pg_add_run_report(conn, self.schema, self.job, run_id,
                                                   started_at, report))

    async def run_reports(self, last: int) -> list[bytes]:
        return await self.call(lambda conn: pg_run_reports(conn, self.schema, self.job, last))

    def run_lock(self) -> AbstractAsyncContextManager[SendPermit]:
        return self._held(PgRunLock(self.connect, self.schema, self.job))

    @contextlib.asynccontextmanager
    async def _held(self, lock: PgRunLock) -> AsyncIterator[SendPermit]:
        async with lock:
            self._lock = lock
            try:
                yield lock
            finally:
                self._lock = None

    async def run_in_progress(self) -> bool:
        return await self.call(lambda conn: lock_held(conn, self.schema, self.job))


def lookup_query(schema: str) -> str:
    """The stored (id hash, content hash) of the ids ``$2`` in stream ``$1``: one primary-key
    probe per id, whatever plan the server caches. (``stream = $1 AND id_hash = ANY($2)``,
    planned once early in a first run with no statistics, found the stream's rows by
    ``stream`` alone and filtered the ids: every lookup read the whole stream.)"""
    return (f"SELECT i, c FROM (SELECT i, (SELECT content_hash FROM {schema}.record_hashes "
            "WHERE stream = $1 AND id_hash = i) AS c FROM unnest($2::bigint[]) AS u(i)) AS k "
            "WHERE c IS NOT NULL")


def forget_query(schema: str) -> str:
    """Delete the stored hash of id ``$2`` in stream ``$1``: one primary-key probe whatever
    plan the server caches (``id_hash = ANY($2)`` read the whole stream, as ``lookup_query``
    says)."""
    return f"DELETE FROM {schema}.record_hashes WHERE stream = $1 AND id_hash = $2"


def _fetch(query: str, *args: Any) -> Op[list[asyncpg.Record]]:
    async def op(conn: asyncpg.Connection) -> list[asyncpg.Record]:
        return list(await conn.fetch(query, *args))

    return op
