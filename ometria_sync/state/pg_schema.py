"""The PostgreSQL state's tables, created on first use and migrated one version at a time.

The version lives in ``<schema>.meta``. Each migration runs in one transaction under a
transaction-scoped advisory lock, so two processes opening a new store at once create it once.
A store written by a newer ometria-sync (a version this code does not know) is refused rather
than misread.

Since version 3 every row belongs to a job (its ``job`` column): several jobs share one schema
without sharing checkpoints, run history, change hashes, dead letters, account or run lock.
Rows written before carry ``job = ''`` (no named job); :func:`adopt_legacy` hands them to the
first job that opens the store listing their stream.
"""

from __future__ import annotations

import hashlib

import asyncpg

from ometria_sync.errors import StateError
from ometria_sync.state.line_groups_sql import PG_V6
from ometria_sync.state.run_history import PG_RUN_REPORTS
from ometria_sync.state.store import check_schema

_V1 = """
CREATE TABLE IF NOT EXISTS {s}.checkpoints (
    stream text NOT NULL,
    part text NOT NULL,
    position text NOT NULL,
    fingerprint text,
    delivered bigint NOT NULL DEFAULT 0,
    updated_at text NOT NULL,
    PRIMARY KEY (stream, part)
);
CREATE TABLE IF NOT EXISTS {s}.stream_runs (
    stream text PRIMARY KEY,
    started_at text NOT NULL,
    finished_at text,
    outcome text NOT NULL,
    delivered bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS {s}.account (
    id integer PRIMARY KEY CHECK (id = 1),
    base_url text NOT NULL,
    key_sha256 text NOT NULL,
    recorded_at text NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.streams (
    id serial PRIMARY KEY,
    name text NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS {s}.record_hashes (
    stream integer NOT NULL,
    id_hash bigint NOT NULL,
    content_hash bigint NOT NULL,
    PRIMARY KEY (stream, id_hash)
);
"""
_V2 = """
CREATE TABLE IF NOT EXISTS {s}.dead_letters (
    id bigserial PRIMARY KEY,
    run_id text NOT NULL,
    stream text NOT NULL,
    time text NOT NULL,
    entry text NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_stream ON {s}.dead_letters (stream, id);
CREATE TABLE IF NOT EXISTS {s}.run_lock (
    key bigint PRIMARY KEY,
    host text NOT NULL,
    pid integer NOT NULL,
    since timestamptz NOT NULL
);
"""
_V3 = """
ALTER TABLE {s}.checkpoints ADD COLUMN job text NOT NULL DEFAULT '';
ALTER TABLE {s}.checkpoints DROP CONSTRAINT checkpoints_pkey;
ALTER TABLE {s}.checkpoints ADD PRIMARY KEY (job, stream, part);
ALTER TABLE {s}.checkpoints ALTER COLUMN job DROP DEFAULT;
ALTER TABLE {s}.stream_runs ADD COLUMN job text NOT NULL DEFAULT '';
ALTER TABLE {s}.stream_runs DROP CONSTRAINT stream_runs_pkey;
ALTER TABLE {s}.stream_runs ADD PRIMARY KEY (job, stream);
ALTER TABLE {s}.stream_runs ALTER COLUMN job DROP DEFAULT;
ALTER TABLE {s}.account ADD COLUMN job text NOT NULL DEFAULT '';
ALTER TABLE {s}.account DROP COLUMN id;
ALTER TABLE {s}.account ADD PRIMARY KEY (job);
ALTER TABLE {s}.account ALTER COLUMN job DROP DEFAULT;
ALTER TABLE {s}.streams ADD COLUMN job text NOT NULL DEFAULT '';
ALTER TABLE {s}.streams DROP CONSTRAINT streams_name_key;
ALTER TABLE {s}.streams ADD UNIQUE (job, name);
ALTER TABLE {s}.streams ALTER COLUMN job DROP DEFAULT;
ALTER TABLE {s}.dead_letters ADD COLUMN job text NOT NULL DEFAULT '';
ALTER TABLE {s}.dead_letters ALTER COLUMN job DROP DEFAULT;
ALTER TABLE {s}.dead_letters ADD COLUMN row_key text UNIQUE;
DROP INDEX {s}.dead_letters_stream;
CREATE INDEX dead_letters_job ON {s}.dead_letters (job, id);
ALTER TABLE {s}.run_lock ADD COLUMN job text NOT NULL DEFAULT '';
"""
_V4 = """
CREATE TABLE IF NOT EXISTS {s}.ledger (
    job text NOT NULL,
    stream text NOT NULL,
    key text NOT NULL,
    kind text NOT NULL,
    reason text NOT NULL,
    content_hash bigint NOT NULL,
    first_run text NOT NULL,
    first_seen text NOT NULL,
    last_run text NOT NULL,
    last_seen text NOT NULL,
    attempts integer NOT NULL,
    payload text,
    PRIMARY KEY (job, stream, key)
);
CREATE TABLE IF NOT EXISTS {s}.clean_verifies (
    job text PRIMARY KEY,
    verified_at text NOT NULL,
    errors text NOT NULL
);
"""
#: a holder that released the run lock says when (``pg_lock.py``: the next one waits no lease)
_V7 = """
ALTER TABLE {s}.run_lock ADD COLUMN released_at timestamptz;
"""
#: version n is reached by running MIGRATIONS[n - 1]: 1, checkpoints, runs, the account and
#: change hashes; 2, dead letters and the run lock's holder; 3, every row keyed by its job
#: (legacy rows ``job = ''``), dead letters with a client-made ``row_key`` (a retried insert
#: finds its rows there and adds none); 4, the ledger of records not (yet) in Ometria (the
#: rows already there stay as they are); 5, ``run_reports`` (``run_history.py``); 6,
#: ``line_groups``, lines Ometria holds as they are (``line_groups_sql.py``); 7, when the run
#: lock's holder released it
MIGRATIONS = (_V1, _V2, _V3, _V4, PG_RUN_REPORTS, PG_V6, _V7)
SCHEMA_VERSION = len(MIGRATIONS)
#: the tables whose rows a job adopts, and the column naming the stream
_ADOPTED = (("checkpoints", "stream"), ("stream_runs", "stream"), ("dead_letters", "stream"),
            ("streams", "name"))


def lock_key(schema: str, what: str, job: str = "") -> int:
    """A 64-bit advisory lock key for ``what`` on the state of ``job`` in ``schema``.

    The schema name is validated whole first (StateError otherwise): two spellings that reach
    the same tables (``ometria_sync`` and ``ometria_sync\\n``) must never take two keys."""
    scope = f"{check_schema(schema)}\x00{job}" if job else check_schema(schema)
    digest = hashlib.blake2b(f"ometria-sync {what}\x00{scope}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


async def stored_version(conn: asyncpg.Connection, schema: str) -> int:
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}.meta")
    if not exists:
        return 0
    value = await conn.fetchval(f"SELECT value FROM {schema}.meta WHERE key = 'schema_version'")
    return int(value) if value is not None else 0


async def migrate(conn: asyncpg.Connection, schema: str, label: str,
                  target: int = SCHEMA_VERSION) -> int:
    """Bring the schema to ``target``; the version found before. StateError for a newer one."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key(schema, "migration"))
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(f"CREATE TABLE IF NOT EXISTS {schema}.meta "
                           "(key text PRIMARY KEY, value text NOT NULL)")
        found = await stored_version(conn, schema)
        if found > SCHEMA_VERSION:
            raise StateError(f"checkpoint store {label} (schema {schema}): written by a newer "
                             f"ometria-sync (schema version {found}, this one reads up to "
                             f"{SCHEMA_VERSION})")
        for version in range(found + 1, target + 1):
            await conn.execute(MIGRATIONS[version - 1].format(s=schema))
        if target > found:
            await conn.execute(
                f"INSERT INTO {schema}.meta VALUES ('schema_version', $1) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value", str(target))
    return found


async def adopt_legacy(conn: asyncpg.Connection, schema: str, job: str,
                       streams: list[str]) -> int:
    """Give ``job`` the rows of ``streams`` written before state was keyed by the job (and,
    when it took any and has no account of its own, a copy of the account they describe).

    Once adopted they are the job's: another job listing a stream of the same name finds
    nothing. Under the migration lock, so two jobs opening at once never both take them.
    Returns how many rows were adopted."""
    if not job or not streams:
        return 0
    adopted = 0
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key(schema, "migration"))
        for table, column in _ADOPTED:
            status = await conn.execute(
                f"UPDATE {schema}.{table} SET job = $1 WHERE job = '' "
                f"AND {column} = ANY($2::text[])", job, streams)
            adopted += int(status.rsplit(" ", 1)[1])
        if adopted:
            await conn.execute(
                f"INSERT INTO {schema}.account (job, base_url, key_sha256, recorded_at) "
                f"SELECT $1, base_url, key_sha256, recorded_at FROM {schema}.account "
                "WHERE job = '' ON CONFLICT (job) DO NOTHING", job)
    return adopted
