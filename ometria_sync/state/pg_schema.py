"""The PostgreSQL state's tables, created on first use and migrated one version at a time.

The version lives in ``<schema>.meta``. Each migration runs in one transaction under a
transaction-scoped advisory lock, so two processes opening a new store at once create it once.
A store written by a newer ometria-sync (a version this code does not know) is refused rather
than misread.
"""

from __future__ import annotations

import asyncpg

from ometria_sync.errors import StateError
from ometria_sync.state.change_index import hash64

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
#: version n is reached by running MIGRATIONS[n - 1]: 1, checkpoints, runs, the account and
#: change hashes; 2, dead letters and the run lock's holder
MIGRATIONS = (_V1, _V2)
SCHEMA_VERSION = len(MIGRATIONS)


def lock_key(schema: str, what: str) -> int:
    """A 64-bit advisory lock key for ``what`` on the state in ``schema``."""
    return hash64(f"ometria-sync {what}\x00{schema}".encode())


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
