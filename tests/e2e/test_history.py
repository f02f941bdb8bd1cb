"""`history` after three runs of a job (clean; with refusals; interrupted), read from the
state store alone (the report folder deleted, as a dead pod's would be): SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import CONTACTS, Workspace, contact_records, jsonl
from tests.pg import DSN, pg_state

pytestmark = pytest.mark.e2e
Emulator = Callable[..., Any]


def _records(bad: int) -> list[Any]:
    records: list[Any] = contact_records(200)
    for i in range(bad):
        records[i * 3]["email"] = "nobody"
    return records


async def three_runs(workspace: Workspace, emulator: Emulator) -> list[int]:
    """A clean run, one with 5 refusals, and one stopped by SIGTERM: their exit codes."""
    codes = []
    async with emulator(rate=50) as emu:
        jsonl(workspace.root / "data/contacts.jsonl", _records(0))
        codes.append((await workspace.run("run", "job.toml", url=emu.url)).code)
        jsonl(workspace.root / "data/contacts.jsonl", _records(5))
        codes.append((await workspace.run("run", "job.toml", "--full-refresh",
                                          url=emu.url)).code)
        port = int(emu.url.split(":")[2].split("/")[0])
    # the same account (its URL), slower: 20 requests answered in 0.5-1 s each take seconds
    async with emulator(rate=50, port=port, latency=(0.5, 1.0)) as slow:
        proc = await workspace.start("run", "job.toml", "--full-refresh", url=slow.url)
        for _ in range(600):  # once it sends (a loaded machine takes seconds to start it)
            if slow.stats()["requests"] > 0:
                break
            await asyncio.sleep(0.025)
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode is not None
        codes.append(proc.returncode)
    return codes


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_history_lists_three_runs_from_the_state_store(
    kind: str, tmp_path: Path, emulator: Emulator, pg_schema: str
) -> None:
    workspace = Workspace(tmp_path)
    state = pg_state(pg_schema) if kind == "postgres" else ""
    workspace.job(state + CONTACTS, rate_limit_per_second=50, batch_size=10)
    if kind == "postgres":
        workspace.extra_env = {"OMETRIA_SYNC_STATE_URL": DSN}
    assert await three_runs(workspace, emulator) == [0, 3, 130]
    shutil.rmtree(tmp_path / "state" / "reports")  # the pod died: only the store is left

    listed = await workspace.run("history", "job.toml", "--json", url="http://127.0.0.1:9")
    assert listed.code == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert [r["outcome"] for r in runs] == ["interrupted", "partial", "ok"]
    assert [r["exit_code"] for r in runs] == [130, 3, 0]
    interrupted, refused, clean = runs
    assert (clean["read"], clean["sent"], clean["refused"]) == (200, 200, 0)
    assert (refused["read"], refused["sent"], refused["refused"]) == (200, 195, 5)
    assert 0 < interrupted["sent"] < 200
    assert all(r["streams"][0]["stream"] == "contacts" for r in runs)
    assert clean["rate_limit"] == 50 and clean["rate_achieved_fraction"] > 0
    assert interrupted["duration_seconds"] >= 1

    table = await workspace.run("history", "job.toml", "--last", "2", url="http://127.0.0.1:9")
    lines = table.stdout.splitlines()
    assert table.code == 0 and len(lines) == 4  # header, rule, two runs
    assert lines[2].split()[1:3] == ["interrupted", "130"]
    assert lines[3].split()[1:3] == ["partial", "3"] and lines[3].split()[-3:-1] == ["195", "5"]
