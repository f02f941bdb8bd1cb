"""PostgreSQL through the real CLI: a changed query or cursor starts over, rows that tie on the
cursor all arrive, and values with no JSON form dead-letter their row, never the run."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest

from ometria_sync.emulator.behaviour import STORE
from tests.e2e.conftest import Workspace
from tests.pg import DSN, QUERY, fill

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

Table = tuple[asyncpg.Connection, str]


@pytest.fixture(autouse=True)
def _dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DSN", DSN)


def _job(workspace: Workspace, query: str, cursor: list[str], **source: Any) -> None:
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in source.items())
    workspace.job(f"""
[[streams]]
name = "orders"
record_type = "order"
[streams.source]
kind = "postgres"
dsn_env = "SOURCE_DSN"
query = {json.dumps(query)}
cursor = {json.dumps(cursor)}
drop = ["updated_at", "seq"]
{extra}""", rate_limit_per_second=200, concurrency=4)


def _events(stderr: str, name: str) -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in stderr.splitlines() if x.startswith("{")]
    return [e for e in lines if e.get("event") == name]


def _arrived(emu: Any) -> dict[str, dict[str, Any]]:
    """The orders Ometria holds (its import queue drained first)."""
    store = emu.app[STORE]
    store.drain(len(store.queue))
    return {key.split("/", 1)[-1]: record for key, record in store.table("order").items()}


async def test_a_changed_cursor_or_query_starts_over_and_says_so(
        workspace: Workspace, emulator: Any, pg_table: Table) -> None:
    """cursor ["seq"] -> ["customer.email"]: the old position ("20") meant nothing for emails
    and an order whose email sorts before it was skipped with exit 0; ["seq"] -> two columns
    crashed with an asyncpg traceback. Now each change reads from the top (change detection
    sends only what changed) and logs source_changed."""
    conn, table = pg_table
    await fill(conn, table, 20)
    query = QUERY.format(t=table)
    async with emulator(rate=200) as emu:
        _job(workspace, query, ["seq"])
        first = await workspace.run("run", "job.toml", url=emu.url)
        assert first.code == 0, first.stderr
        await conn.execute(f"UPDATE {table} SET email = '0ann@example.com', total = 77 "
                           "WHERE id = 3")
        _job(workspace, query, ["customer.email"])
        second = await workspace.run("run", "job.toml", url=emu.url)
        assert second.code == 0, second.stderr
        assert _arrived(emu)["3"]["grand_total"] == 77.0
        assert _arrived(emu)["3"]["customer"]["email"] == "0ann@example.com"
        _job(workspace, query, ["updated_at", "seq"])
        third = await workspace.run("run", "job.toml", url=emu.url)
        accepted = emu.stats()["records_accepted"]
    assert third.code == 0, third.stderr
    assert "Traceback" not in second.stderr + third.stderr
    assert accepted == 21  # 20, then the one changed order; nothing on the third run
    for result in (second, third):
        [changed] = _events(result.stderr, "source_changed")
        assert changed["stream"] == "orders" and "reading from the start" in changed["reason"]
    assert _events(first.stderr, "source_changed") == []


async def test_rows_that_tie_on_a_non_unique_cursor_all_arrive(
        workspace: Workspace, emulator: Any, pg_table: Table) -> None:
    """cursor = ["updated_at"] with five rows sharing a timestamp and page_size = 2 sent two
    of them; fill() also makes every ten rows share one."""
    conn, table = pg_table
    await fill(conn, table, 45)
    await conn.execute(f"UPDATE {table} SET updated_at = timestamptz '2024-05-01 00:00+00' "
                       "WHERE id BETWEEN 11 AND 15")
    _job(workspace, QUERY.format(t=table), ["updated_at"], page_size=2)
    async with emulator(rate=200) as emu:
        result = await workspace.run("run", "job.toml", url=emu.url)
        stats = emu.stats()
    assert result.code == 0, result.stderr
    assert stats["distinct_ids"] == 45


async def test_values_without_a_json_form_dead_letter_their_row_not_the_run(
        workspace: Workspace, emulator: Any, pg_table: Table) -> None:
    """inet becomes text; an int4range or a bit string has no JSON form: those rows go to the
    dead letter with the field and a printable value, the others are sent, exit 3."""
    conn, table = pg_table
    await fill(conn, table, 6)
    query = (f"SELECT id::text AS id, currency, updated_at, id AS seq, "
             "('10.0.0.' || id)::inet AS ip, "
             "CASE WHEN id = 2 THEN int4range(1, 5) END AS span, "
             "CASE WHEN id = 4 THEN B'101' END AS flags, "
             f"CASE WHEN id = 5 THEN 'NaN'::numeric ELSE total END AS grand_total FROM {table}")
    _job(workspace, query, ["updated_at", "seq"])
    async with emulator(rate=200) as emu:
        result = await workspace.run("run", "job.toml", url=emu.url)
        arrived = _arrived(emu)
    assert result.code == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(arrived) == ["1", "3", "6"]
    assert arrived["1"]["ip"] == "10.0.0.1"
    dead = {d["id"]: d for d in workspace.dead_letters()}
    assert sorted(dead) == ["2", "4", "5"]
    reasons = {rid: [(r["path"], r["message"]) for r in d["reasons"] if r["path"] != "ip"
                     and "unknown field" not in r["message"]] for rid, d in dead.items()}
    assert reasons["2"] == [("span", "has no JSON form (type Range; convert it in the source, "
                                     "e.g. cast it to text in the query), got <Range [1, 5)>")]
    assert reasons["4"] == [("flags", "has no JSON form (type BitString; convert it in the "
                                      "source, e.g. cast it to text in the query), got "
                                      "<BitString 101>")]
    assert reasons["5"] == [("grand_total", "must be a finite number, got NaN")]
    assert dead["2"]["record"]["span"] == "<Range [1, 5)>"
