"""The state in PostgreSQL, through the real CLI: no state file anywhere, dead letters in the
database, ``status``/``reset``/``dead-letter``, a second run from another folder refused at
once, and a password in the URL never shown."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import CONTACTS, Workspace, contact_records, jsonl
from tests.pg import DSN

pytestmark = pytest.mark.e2e
Emulator = Callable[..., Any]
CANARY = "canary-state-pw-6a1f0c"
STATE = """
[state]
checkpoint_url_env = "OMETRIA_SYNC_STATE_URL"
schema = "{schema}"
dead_letter = "database"
"""


def pg_workspace(root: Path, schema: str, records: list[Any]) -> Workspace:
    """A job folder whose state is the PostgreSQL schema ``schema``, its URL with a password."""
    workspace = Workspace(root)
    root.mkdir(parents=True, exist_ok=True)
    jsonl(root / "data/contacts.jsonl", records)
    workspace.job(STATE.format(schema=schema) + CONTACTS)
    password_url = DSN.replace("postgresql://postgres@", f"postgresql://postgres:{CANARY}@")
    assert CANARY in password_url
    workspace.extra_env = {"OMETRIA_SYNC_STATE_URL": password_url}
    return workspace


async def test_postgres_state_keeps_no_file_and_status_reset_dead_letter_work(
        tmp_path: Path, emulator: Emulator, pg_schema: str) -> None:
    workspace = pg_workspace(tmp_path, pg_schema, [*contact_records(300), "{not json"])
    async with emulator(rate=50) as emu:
        first = await workspace.run("run", "job.toml", url=emu.url)
        second = await workspace.run("run", "job.toml", url=emu.url)
        status = await workspace.run("status", "job.toml", "--json", url=emu.url)
        dead = await workspace.run("dead-letter", "job.toml", "--stream", "contacts", url=emu.url)
        reset = await workspace.run("reset", "job.toml", "--yes", url=emu.url)
        after = await workspace.run("dead-letter", "job.toml", url=emu.url)
        stats = emu.stats()
    assert first.code == 3, first.stderr  # partial: one record refused
    assert second.code == 0, second.stderr
    assert stats["distinct_ids"] == 300 and stats["records_accepted"] == 300
    assert not (tmp_path / "state" / "checkpoints.db").exists()
    assert not (tmp_path / "state" / "dead-letter.jsonl").exists()
    (row,) = json.loads(status.stdout)
    assert (row["stream"], row["delivered"], row["tracked_ids"]) == ("contacts", 300, 300)
    (line,) = dead.stdout.splitlines()
    entry = json.loads(line)
    assert (entry["stream"], entry["line"], entry["stage"]) == ("contacts", 301, "source")
    assert reset.code == 0 and after.code == 0 and after.stdout == ""
    reports = "".join(p.read_text() for p in (tmp_path / "state" / "reports").glob("*.json"))
    for out in (first, second, status, dead, reset, after):
        assert CANARY not in out.stdout + out.stderr
    assert CANARY not in reports and "postgresql://postgres:***@" in first.stdout + reports


async def test_a_second_run_from_another_folder_exits_at_once_naming_the_holder(
        tmp_path: Path, emulator: Emulator, pg_schema: str) -> None:
    records = contact_records(12000)  # 12 s of sending at 10/s: still going when the second,
    first_ws = pg_workspace(tmp_path / "a", pg_schema, records)  # bound to 10 s, is done
    second_ws = pg_workspace(tmp_path / "b", pg_schema, records)
    async with emulator(rate=10) as emu:
        first_ws.job(STATE.format(schema=pg_schema) + CONTACTS, rate_limit_per_second=10)
        first = await first_ws.start("run", "job.toml", url=emu.url)
        for _ in range(200):
            if emu.stats()["requests"] > 0:
                break
            await asyncio.sleep(0.05)
        second = await second_ws.run("run", "job.toml", url=emu.url, timeout=30)
        first.terminate()
        await asyncio.wait_for(first.communicate(), 30)
    assert second.code == 1
    assert second.seconds < 10
    assert "another run of this job is in progress" in second.stderr
    assert f"pid {first.pid}" in second.stderr
    assert CANARY not in second.stderr + second.stdout
