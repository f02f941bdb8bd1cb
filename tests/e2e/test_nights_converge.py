"""Nights that converge (issue 31), through the real CLI against the emulator, with the state
in SQLite and in PostgreSQL: night 1 with invalid rows exits 3; night 2 re-reads the same bad
rows (the file changed elsewhere) and exits 0 with the known refusals summarised; a row fixed in
the source goes out once and leaves the ledger; ``exit_on = "any_refusal"`` keeps the old 3."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ometria_sync.emulator.behaviour import STORE
from tests.e2e.conftest import CONTACTS, Workspace, contact_records, jsonl
from tests.e2e.crash_trials import kill_mid_run, once
from tests.pg import DSN, QUERY, connect, fill, pg_state

pytestmark = pytest.mark.e2e
Emulator = Callable[..., Any]
BAD = {5, 17, 40}


def night(valid: int, fixed: set[int] = frozenset()) -> list[Any]:  # type: ignore[assignment]
    """A full export: a line that is not JSON first (a record without an id: kept in the
    ledger by its position, which later lines never move), then ``valid`` contacts of which
    those in BAD have an unusable email unless ``fixed``."""
    records: list[Any] = ["{not json"]
    for record in contact_records(valid):
        number = int(record["id"][1:])
        if number in BAD and number not in fixed:
            record["email"] = f"user{number}-at-example.com"
            record["phone_number"] = f"+447700900{number:03d}"
        records.append(record)
    return records


async def ledger_keys(workspace: Workspace, kind: str, schema: str) -> list[str]:
    if kind == "sqlite":
        db = sqlite3.connect(workspace.root / "state" / "checkpoints.db")
        try:
            return sorted(r[0] for r in db.execute("SELECT key FROM ledger"))
        finally:
            db.close()
    conn = await connect()
    try:
        return sorted(r[0] for r in await conn.fetch(f"SELECT key FROM {schema}.ledger"))
    finally:
        await conn.close()


def report(workspace: Workspace, stdout: str) -> dict[str, Any]:
    path = next(line.split(": ", 1)[1] for line in stdout.splitlines()
                if line.startswith("report: "))
    data: dict[str, Any] = json.loads((workspace.root / path).read_text())
    return data


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_known_refusals_exit_0_and_a_fixed_row_goes_out_once_and_leaves_the_ledger(
        kind: str, tmp_path: Path, emulator: Emulator, pg_schema: str) -> None:
    workspace = Workspace(tmp_path)
    state = pg_state(pg_schema, dead_letter="database") if kind == "postgres" else ""
    if kind == "postgres":
        workspace.extra_env = {"OMETRIA_SYNC_STATE_URL": DSN}
    workspace.job(state + CONTACTS)
    data = tmp_path / "data/contacts.jsonl"
    async with emulator(rate=50) as emu:
        seen = emu.app[STORE].stats.seen
        jsonl(data, night(100))
        first = await workspace.run("run", "job.toml", url=emu.url)
        after_first = await ledger_keys(workspace, kind, pg_schema)
        jsonl(data, night(101))  # a new row at the end: the file is read again from the top
        second = await workspace.run("run", "job.toml", url=emu.url)
        jsonl(data, night(102, fixed={17}))
        third = await workspace.run("run", "job.toml", url=emu.url)
        after_third = await ledger_keys(workspace, kind, pg_schema)
        stats = emu.stats()
        fixed = await workspace.run("trace", "job.toml", "c17", url=emu.url)
        still = await workspace.run("trace", "job.toml", "shop/c5", url=emu.url)
        clear = await workspace.run("trace", "job.toml", "c5", "--show-values", url=emu.url)
        status = await workspace.run("status", "job.toml", "--json", url=emu.url)
    assert first.code == 3, first.stderr
    assert after_first == ['position [10,1]', "shop/c17", "shop/c40", "shop/c5"]
    assert second.code == 0, second.stdout + second.stderr
    assert "contacts: 4 still refused since 20" in second.stdout
    assert ", unchanged; 0 new" in second.stdout
    second_report = report(workspace, second.stdout)["streams"][0]
    assert (second_report["refused_known"], second_report["refused_new"]) == (4, 0)
    assert second_report["dead_lettered"] == 4
    assert third.code == 0, third.stdout + third.stderr
    assert seen["contact:shop/c17"] == 1  # the fixed row went out once
    assert after_third == ['position [10,1]', "shop/c40", "shop/c5"]
    third_report = report(workspace, third.stdout)["streams"][0]
    assert third_report["ledger_left"] == 1 and third_report["sent"] == 2  # c17 and c101
    assert stats["distinct_ids"] == 100  # c0..c101, less c5 and c40 (never valid)
    assert json.loads(status.stdout)[0]["ledger"] == {"refused": 3}
    # the fixed row's story: refused by nights 1 and 2 (new, then known), read by their runs,
    # then acknowledged; the still bad one's: refused three times, still in the ledger
    runs = [run_id_of(workspace, r.stdout) for r in (first, second, third)]
    lines = fixed.stdout.splitlines()
    assert fixed.code == 0, fixed.stderr
    assert [line for line in lines if "refused at validate" in line] == [
        line for line in lines if runs[0] in line and "(new)" in line] + [
        line for line in lines if runs[1] in line and "(known since" in line]
    assert any(runs[0] in line and "read by a run" in line for line in lines)
    assert lines[-1].endswith("acknowledged by Ometria (a version of it: its change hash is kept)")
    assert "ledger:" not in fixed.stdout
    assert still.stdout.count("refused at validate") == 3
    assert f"run {runs[2]}: ledger: still refused - email: must be an email address" in (
        still.stdout), still.stdout
    assert "+447700900005" not in still.stdout and "+4*********05" in still.stdout
    assert "+447700900005" in clear.stdout


async def test_any_refusal_exits_3_for_known_refusals_too(
        tmp_path: Path, emulator: Emulator) -> None:
    workspace = Workspace(tmp_path)
    workspace.job(CONTACTS)
    job = tmp_path / "job.toml"
    job.write_text(job.read_text().replace("[run]\n", '[run]\nexit_on = "any_refusal"\n'))
    data = tmp_path / "data/contacts.jsonl"
    async with emulator(rate=50) as emu:
        jsonl(data, night(50))
        first = await workspace.run("run", "job.toml", url=emu.url)
        jsonl(data, night(51))
        second = await workspace.run("run", "job.toml", url=emu.url)
    assert (first.code, second.code) == (3, 3), second.stdout + second.stderr
    assert "contacts: 4 still refused since" in second.stdout


def run_id_of(workspace: Workspace, stdout: str) -> str:
    return str(report(workspace, stdout)["run_id"])


def ids(stdout: str) -> list[str | None]:
    return sorted((json.loads(line).get("id") or "-") for line in stdout.splitlines())


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_dead_letters_per_run_and_validate_keeps_out_of_them(
        kind: str, tmp_path: Path, emulator: Emulator, pg_schema: str) -> None:
    workspace = Workspace(tmp_path)
    if kind == "postgres":
        workspace.extra_env = {"OMETRIA_SYNC_STATE_URL": DSN}
    state = pg_state(pg_schema, dead_letter="database") if kind == "postgres" else ""
    workspace.job(state + CONTACTS)
    data = tmp_path / "data/contacts.jsonl"
    dead_file = tmp_path / "state" / "dead-letter.jsonl"
    async with emulator(rate=50) as emu:
        jsonl(data, night(50))
        first = await workspace.run("run", "job.toml", url=emu.url)
        validate = await workspace.run("validate", "job.toml", url=emu.url)
        lines_after_validate = dead_file.read_text().count("\n") if dead_file.exists() else 0
        second_night = night(51)
        second_night[51]["email"] = "user50-at-example.com"  # c50: a new refusal
        jsonl(data, second_night)
        second = await workspace.run("run", "job.toml", url=emu.url)
        last = await workspace.run("dead-letter", "job.toml", "--last", url=emu.url)
        last_new = await workspace.run("dead-letter", "job.toml", "--last", "--new", url=emu.url)
        by_run = await workspace.run("dead-letter", "job.toml", "--run",
                                     run_id_of(workspace, first.stdout), url=emu.url)
        every = await workspace.run("dead-letter", "job.toml", url=emu.url)
    assert (first.code, validate.code, second.code) == (3, 3, 3), second.stdout
    assert lines_after_validate == (4 if kind == "sqlite" else 0)  # validate wrote none there
    validated = (tmp_path / "state" / "validate-dead-letter.jsonl").read_text().splitlines()
    assert len(validated) == 4
    assert ids(last.stdout) == ["-", "c17", "c40", "c5", "c50"], last.stderr
    assert {json.loads(line)["run_id"] for line in last.stdout.splitlines()} == {
        run_id_of(workspace, second.stdout)}
    assert ids(last_new.stdout) == ["c50"], last_new.stderr
    assert ids(by_run.stdout) == ["-", "c17", "c40", "c5"]
    assert len(every.stdout.splitlines()) == 9
    assert "5 refused record(s) of run" in last.stderr


def ledger_rows(root: Path) -> int:
    db = sqlite3.connect(root / "state" / "checkpoints.db")
    try:
        return int(db.execute("SELECT count(*) FROM ledger").fetchone()[0])
    finally:
        db.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_batch_whose_retries_ran_out_is_resent_next_night(
        kind: str, tmp_path: Path, emulator: Emulator, pg_schema: str) -> None:
    """Night 1 every push fails (retries run out: exit 1); night 2 the nightly file holds other
    records only, yet the records of the batches that failed arrive, from the ledger, and
    leave it."""
    workspace = Workspace(tmp_path)
    if kind == "postgres":
        workspace.extra_env = {"OMETRIA_SYNC_STATE_URL": DSN}
    state = pg_state(pg_schema, dead_letter="database") if kind == "postgres" else ""
    workspace.job(state + CONTACTS, max_retries=1, batch_size=10, concurrency=2)
    data = tmp_path / "data/contacts.jsonl"
    port = free_port()
    jsonl(data, contact_records(40))
    async with emulator(rate=50, port=port, fail_rate=1.0) as emu:
        first = await workspace.run("run", "job.toml", url=emu.url)
    noted = await ledger_keys(workspace, kind, pg_schema)
    jsonl(data, [{**r, "id": f"n{i}"} for i, r in enumerate(contact_records(15))])
    async with emulator(rate=50, port=port) as emu:
        seen = emu.app[STORE].stats.seen
        second = await workspace.run("run", "job.toml", url=emu.url)
    assert first.code == 1, first.stderr
    assert noted and all(key.startswith("shop/c") for key in noted)
    assert second.code == 0, second.stdout + second.stderr
    assert {f"contact:{key}" for key in noted} <= set(seen)  # resent from the ledger
    assert all(seen[f"contact:{key}"] == 1 for key in noted)
    assert await ledger_keys(workspace, kind, pg_schema) == []
    summary = report(workspace, second.stdout)["streams"][0]
    assert summary["resent"] == len(noted) and summary["ledger_left"] == len(noted)


async def test_kill_9_while_resending_loses_nothing(tmp_path: Path, emulator: Emulator) -> None:
    """Night 1 every push fails: the batches tried are kept in the ledger. Night 2 is killed
    (SIGKILL) while it resends them; night 3 (the export now holds other records only) still
    delivers every one of them, and the ledger is then empty."""
    workspace = Workspace(tmp_path)
    workspace.job(CONTACTS, max_retries=0, batch_size=2, concurrency=8)
    data = tmp_path / "data/contacts.jsonl"
    port = free_port()
    jsonl(data, contact_records(200))
    async with emulator(rate=50, port=port, fail_rate=1.0) as emu:
        first = await workspace.run("run", "job.toml", url=emu.url)
    noted = await ledger_keys(workspace, "sqlite", "")
    jsonl(data, [{**r, "id": f"n{i}"} for i, r in enumerate(contact_records(5))])
    async with emulator(rate=2, port=port, latency=(0.3, 0.3)) as emu:
        store = emu.app[STORE]
        # killed once the first resent records left the ledger (acknowledged), before the end
        await kill_mid_run(workspace, emu.url, once(lambda: ledger_rows(tmp_path) < len(noted)))
        after_kill = await ledger_keys(workspace, "sqlite", "")
        arrived_before = set(store.stats.seen)
    async with emulator(rate=50, port=port) as emu:
        seen = emu.app[STORE].stats.seen
        third = await workspace.run("run", "job.toml", url=emu.url)
    assert first.code == 1, first.stderr
    assert len(noted) >= 4
    assert 0 < len(after_kill) < len(noted)  # some left the ledger before the kill, not all
    assert third.code == 0, third.stdout + third.stderr
    arrived = arrived_before | set(seen)
    assert {f"contact:{key}" for key in noted} <= arrived  # nothing lost
    assert {f"contact:{key}" for key in after_kill} <= set(seen)  # the rest resent on night 3
    assert await ledger_keys(workspace, "sqlite", "") == []


async def test_a_row_fixed_back_to_what_ometria_holds_leaves_the_ledger(
        tmp_path: Path, emulator: Emulator) -> None:
    """Night 1 sends c5; night 2's c5 is refused; night 3's c5 is night 1's again: unchanged
    against what Ometria acknowledged, so nothing is sent, and it leaves the ledger."""
    workspace = Workspace(tmp_path)
    workspace.job(CONTACTS)
    data = tmp_path / "data/contacts.jsonl"
    async with emulator(rate=50) as emu:
        jsonl(data, contact_records(20))
        first = await workspace.run("run", "job.toml", url=emu.url)
        broken = contact_records(21)
        broken[5]["email"] = "user5-at-example.com"
        jsonl(data, broken)
        second = await workspace.run("run", "job.toml", url=emu.url)
        after_second = await ledger_keys(workspace, "sqlite", "")
        jsonl(data, contact_records(22))
        third = await workspace.run("run", "job.toml", url=emu.url)
        seen = emu.app[STORE].stats.seen
    assert (first.code, second.code, third.code) == (0, 3, 0), third.stdout
    assert after_second == ["shop/c5"]
    assert await ledger_keys(workspace, "sqlite", "") == []
    assert seen["contact:shop/c5"] == 1  # sent on night 1 only
    assert report(workspace, third.stdout)["streams"][0]["ledger_left"] == 1


VERIFY_STREAMS = """
[[streams]]
name = "contacts"
record_type = "contact"
source = { kind = "jsonl", path = "data/contacts.jsonl" }
"""


async def test_errors_exits_3_only_for_errors_listed_after_the_last_clean_verify(
        tmp_path: Path, emulator: Emulator) -> None:
    """Review item 14: after `verify --all --repair` fixed every record, `errors` no longer
    exits 3 for the errors Ometria still lists (history), only for errors listed since."""
    workspace = Workspace(tmp_path)
    workspace.job(VERIFY_STREAMS, rate_limit_per_second=100)
    jsonl(tmp_path / "data/contacts.jsonl", contact_records(300))
    async with emulator(rate=120, import_failure_rate=0.05, silent_share=0.0) as emu:
        run = await workspace.run("run", "job.toml", url=emu.url)
        await asyncio.sleep(0.5)  # the emulator imports what it queued
        before = await workspace.run("errors", "job.toml", url=emu.url)
        repair = await workspace.run("verify", "job.toml", "--all", "--repair", "--settle",
                                     "0.5", url=emu.url)
        verified = await workspace.run("verify", "job.toml", "--all", url=emu.url)
        repaired_id = emu.app[STORE].lost[0]["key"]
        story = await workspace.run("trace", "job.toml", repaired_id, url=emu.url)
        after = await workspace.run("errors", "job.toml", url=emu.url)
        jsonl(tmp_path / "data/contacts.jsonl", contact_records(600))
        more = await workspace.run("run", "job.toml", url=emu.url)
        await asyncio.sleep(0.5)
        newer = await workspace.run("errors", "job.toml", url=emu.url)
    assert run.code == 0 and more.code == 0, more.stderr
    assert before.code == 3, before.stdout
    assert (repair.code, verified.code) == (0, 0), repair.stdout + verified.stdout
    assert after.code == 0, after.stdout + after.stderr
    assert "none is newer: nothing to look at" in after.stdout
    assert newer.code == 3 and "listed since:" in newer.stdout, newer.stdout
    # the repaired record's story: listed, resent by --repair, found there (out of the ledger)
    steps = [line.split(": ", 2)[-1] for line in story.stdout.splitlines()]
    assert [s.split(" - ")[0] for s in steps if s.startswith("verify: ")] == [
        "verify: found listed in /push/_errors", "verify: repaired", "verify: verified"], (
        story.stdout)
    assert "resent by verify --repair (round 1)" in story.stdout


async def test_a_postgres_source_resends_its_current_version_read_again_by_id(
        tmp_path: Path, emulator: Emulator, pg_table: tuple[Any, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Night 1 every push fails. Before night 2 a row changes without its cursor moving; the
    ledger's resend reads it again from the table by id (not the payload kept), so it goes out
    once, in its current version, and the cursor's read of it then finds it unchanged."""
    conn, table = pg_table
    await fill(conn, table, 30)
    monkeypatch.setenv("SOURCE_DSN", DSN)
    workspace = Workspace(tmp_path)
    query = QUERY.format(t=table).replace('"', '\\"')
    workspace.job(f"""
[[streams]]
name = "orders"
record_type = "order"
[streams.source]
kind = "postgres"
dsn_env = "SOURCE_DSN"
query = "{query}"
cursor = ["updated_at", "seq"]
drop = ["updated_at", "seq"]
""", max_retries=0, batch_size=5, concurrency=2)
    port = free_port()
    async with emulator(rate=50, port=port, fail_rate=1.0) as emu:
        first = await workspace.run("run", "job.toml", url=emu.url)
    noted = await ledger_keys(workspace, "sqlite", "")
    changed = noted[0]
    await conn.execute(f"UPDATE {table} SET total = 999.99 WHERE id::text = $1", changed)
    async with emulator(rate=50, port=port) as emu:
        seen = emu.app[STORE].stats.seen
        second = await workspace.run("run", "job.toml", url=emu.url)
        await asyncio.sleep(0.3)  # imported
        stored = emu.app[STORE].get("order", changed)
    assert first.code == 1, first.stderr
    assert second.code == 0, second.stdout + second.stderr
    assert seen[f"order:{changed}"] == 1  # its current version, once
    assert stored is not None and stored["grand_total"] == 999.99
    summary = report(workspace, second.stdout)["streams"][0]
    assert summary["resent"] == summary["reread"] == summary["ledger_left"] == len(noted)
    assert await ledger_keys(workspace, "sqlite", "") == []
