"""Run reports kept in the state store, so the history of a job outlives the machine (a pod
that dies keeps them): one row per run, the run report's JSON as written to
``report.folder``, keyed by the job and the run id.

Both stores write a report through their ordered write queue (``add_run_report``: a retry
after a lost connection replaces the row with itself, adding none) and read the newest ``n``
back (``run_reports``). The store does not read the JSON: ``report/history.py`` does.

MIGRATION, schema version 5: the ``run_reports`` table (after the ledger's version 4;
``SCHEMA_VERSION`` in ``sqlite_sql.py``, ``MIGRATIONS`` in ``pg_schema.py``). The step is
idempotent (``IF NOT EXISTS``), so it is harmless on a store that already has it.
"""

from __future__ import annotations

import sqlite3

import asyncpg

from ometria_sync.errors import StateError

#: SQLite: the run_reports table (migration step, version 5; see above)
SQLITE_RUN_REPORTS = """
CREATE TABLE IF NOT EXISTS run_reports (
    job TEXT NOT NULL, run_id TEXT NOT NULL, started_at TEXT NOT NULL, report TEXT NOT NULL,
    PRIMARY KEY (job, run_id));
CREATE INDEX IF NOT EXISTS run_reports_started ON run_reports (job, started_at)
"""

#: PostgreSQL: the run_reports table in the state's schema ``{s}`` (migration step, version 5:
#: an entry of ``pg_schema.MIGRATIONS``, which runs each step's SQL in its transaction)
PG_RUN_REPORTS = """
CREATE TABLE IF NOT EXISTS {s}.run_reports (
    job text NOT NULL, run_id text NOT NULL, started_at text NOT NULL, report text NOT NULL,
    PRIMARY KEY (job, run_id));
CREATE INDEX IF NOT EXISTS run_reports_started ON {s}.run_reports (job, started_at)
"""


def migrate_sqlite_run_reports(db: sqlite3.Connection) -> None:
    """The SQLite migration step (inside the caller's transaction)."""
    for statement in SQLITE_RUN_REPORTS.split(";"):
        db.execute(statement)


def sqlite_add_run_report(db: sqlite3.Connection, job: str, run_id: str, started_at: str,
                          report: bytes, where: str) -> None:
    try:
        db.execute("INSERT OR REPLACE INTO run_reports (job, run_id, started_at, report) "
                   "VALUES (?, ?, ?, ?)", (job, run_id, started_at, report.decode()))
    except sqlite3.Error as exc:
        raise StateError(f"checkpoint store {where}: cannot write the run report: {exc}") from None


def sqlite_run_reports(db: sqlite3.Connection, job: str, last: int, where: str) -> list[bytes]:
    """The newest ``last`` reports of ``job``, oldest first."""
    try:
        rows = db.execute("SELECT report FROM run_reports WHERE job = ? "
                          "ORDER BY started_at DESC, run_id DESC LIMIT ?", (job, last)).fetchall()
    except sqlite3.Error as exc:
        raise StateError(f"checkpoint store {where}: cannot read the run reports: {exc}") from None
    return [row[0].encode() for row in reversed(rows)]


async def pg_add_run_report(conn: asyncpg.Connection, schema: str, job: str, run_id: str,
                            started_at: str, report: bytes) -> None:
    await conn.execute(
        f"INSERT INTO {schema}.run_reports (job, run_id, started_at, report) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (job, run_id) DO UPDATE SET "
        "started_at = excluded.started_at, report = excluded.report",
        job, run_id, started_at, report.decode())


async def pg_run_reports(conn: asyncpg.Connection, schema: str, job: str,
                         last: int) -> list[bytes]:
    rows = await conn.fetch(
        f"SELECT report FROM {schema}.run_reports WHERE job = $1 "
        "ORDER BY started_at DESC, run_id DESC LIMIT $2", job, last)
    return [row["report"].encode() for row in reversed(rows)]
