"""Two different jobs keep their state in one store (one PostgreSQL schema, one SQLite file),
through the real CLI against the emulator: both run at the same time to the end, each with its
own run lock, and each resumes only its own checkpoint, though both have a stream named
``contacts``. And the commands that read only the state need no source secret."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Workspace, jsonl
from tests.pg import DSN, pg_state

pytestmark = pytest.mark.e2e
Emulator = Any
STREAM = """
[[streams]]
name = "contacts"
record_type = "contact"
source = {{ kind = "jsonl", path = "data/{data}.jsonl" }}
"""


def _records(prefix: str, n: int) -> list[dict[str, Any]]:
    return [{"@collection": "shop", "id": f"{prefix}{i}", "email": f"{prefix}{i}@example.com"}
            for i in range(n)]


#: records of job a (about 15 s at 10 requests/s) and of job b (short: it ends while a runs,
#: even when b's start-up takes several seconds on a loaded machine)
A, B = 15000, 1500


def _two_jobs(root: Path, state: str) -> Workspace:
    """``a.toml`` (named by its file) and ``b.toml`` (``name = "job-b"``) in one folder, one
    state, a stream ``contacts`` each reading its own file."""
    workspace = Workspace(root)
    root.mkdir(parents=True, exist_ok=True)
    jsonl(root / "data/a.jsonl", _records("a", A))
    jsonl(root / "data/b.jsonl", _records("b", B))
    job = workspace.job(state + STREAM.format(data="a"), rate_limit_per_second=10)
    text = job.read_text()
    (root / "a.toml").write_text(text)
    (root / "b.toml").write_text('name = "job-b"\n' + text.replace("data/a.jsonl",
                                                                     "data/b.jsonl"))
    job.unlink()
    return workspace


async def _side_by_side(workspace: Workspace, emu: Any) -> tuple[Any, Any]:
    """Start a, wait until it sends, run b to the end meanwhile, then let a finish."""
    first = await workspace.start("run", "a.toml", url=emu.url)
    for _ in range(400):
        if emu.stats()["requests"] > 0:
            break
        await asyncio.sleep(0.025)
    second = await workspace.run("run", "b.toml", url=emu.url)
    running_alongside = first.returncode is None
    _, err = await asyncio.wait_for(first.communicate(), 120)
    assert running_alongside, f"a ended before b did: not side by side ({err.decode()})"
    return (first.returncode, err.decode()), second


async def _two_jobs_trial(workspace: Workspace, emulator: Emulator) -> None:
    async with emulator(rate=25) as emu:
        (code_a, err_a), second = await _side_by_side(workspace, emu)
        assert code_a == 0, err_a
        assert second.code == 0, second.stderr
        assert emu.stats()["distinct_ids"] == A + B
        again_a = await workspace.run("run", "a.toml", url=emu.url)
        again_b = await workspace.run("run", "b.toml", url=emu.url)
        status_a = await workspace.run("status", "a.toml", "--json", url=emu.url)
        status_b = await workspace.run("status", "b.toml", "--json", url=emu.url)
        reset_b = await workspace.run("reset", "b.toml", "--yes", url=emu.url)
        after_a = await workspace.run("status", "a.toml", "--json", url=emu.url)
        stats = emu.stats()
    # each resumed from its own checkpoint: nothing read again, nothing sent again
    assert again_a.code == 0 and again_b.code == 0, again_a.stderr + again_b.stderr
    assert stats["records_accepted"] == A + B
    (row_a,), (row_b,) = json.loads(status_a.stdout), json.loads(status_b.stdout)
    assert (row_a["delivered"], row_b["delivered"]) == (A, B)
    assert (row_a["tracked_ids"], row_b["tracked_ids"]) == (A, B)
    assert reset_b.code == 0
    (kept,) = json.loads(after_a.stdout)
    assert (kept["delivered"], kept["tracked_ids"], kept["outcome"]) == (A, A, "ok")


async def test_two_jobs_in_one_postgres_schema_run_side_by_side_each_on_its_own_state(
        tmp_path: Path, emulator: Emulator, pg_schema: str) -> None:
    workspace = _two_jobs(tmp_path, pg_state(pg_schema, dead_letter="database"))
    workspace.extra_env = {"OMETRIA_SYNC_STATE_URL": DSN}
    await _two_jobs_trial(workspace, emulator)


async def test_two_jobs_in_one_sqlite_file_run_side_by_side_each_on_its_own_state(
        tmp_path: Path, emulator: Emulator) -> None:
    workspace = _two_jobs(tmp_path, "")  # both: sqlite:///state/checkpoints.db
    await _two_jobs_trial(workspace, emulator)
    assert (tmp_path / "state" / "checkpoints.db.a.lock").exists()
    assert (tmp_path / "state" / "checkpoints.db.job-b.lock").exists()


POSTGRES_SOURCE = """
[[streams]]
name = "orders"
record_type = "order"
[streams.source]
kind = "postgres"
dsn_env = "NO_SUCH_SOURCE_DSN_7c1e"
query = "SELECT 1 AS id, now() AS updated_at"
cursor = ["updated_at", "id"]
"""


async def test_commands_that_read_only_the_state_need_no_source_secret(
        workspace: Workspace, emulator: Emulator, pg_schema: str) -> None:
    workspace.job(pg_state(pg_schema, dead_letter="database") + POSTGRES_SOURCE)
    workspace.extra_env = {"OMETRIA_SYNC_STATE_URL": DSN}
    async with emulator() as emu:
        status = await workspace.run("status", "job.toml", url=emu.url)
        dead = await workspace.run("dead-letter", "job.toml", url=emu.url)
        reset = await workspace.run("reset", "job.toml", "--yes", url=emu.url)
        run = await workspace.run("run", "job.toml", url=emu.url)
        validate = await workspace.run("validate", "job.toml", url=emu.url)
        plan = await workspace.run("plan", "job.toml", url=emu.url)
        verify = await workspace.run("verify", "job.toml", url=emu.url)
        sent = emu.stats()["requests"]
    assert (status.code, dead.code, reset.code) == (0, 0, 0), status.stderr + dead.stderr
    assert "orders" in status.stdout
    message = ("streams[0].source.dsn_env: the environment variable NO_SUCH_SOURCE_DSN_7c1e is "
               "not set (it holds the connection string)")
    for refused in (run, validate, plan, verify):
        assert refused.code == 1 and message in refused.stderr, refused.stderr
    assert sent == 0
