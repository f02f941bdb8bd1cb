"""kill -9 trials with a change log that reverts (review item 1, issue 27's "Done when").

Night 1 leaves ``c0`` as ``A``. Night 2's change log has ``c0 B``, 1999 other contacts, then
``c0 A`` again (A -> B -> A). The run is killed (SIGKILL, no cleanup) as soon as a checkpoint
passes ``c0 B`` and before it reaches the final ``A``, then run again to the end. Ometria must
end on ``A``: if the checkpoint was durable while the stored change hash of ``c0`` was still
night 1's ``A``, the resumed run judges the final ``A`` unchanged, skips it, and exits 0 with
Ometria on ``B``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.e2e.conftest import CONTACTS, KEY, Workspace, jsonl
from tests.e2e.crash_trials import Process, Wait, crash_trials, once, sqlite_position
from tests.pg import DSN, connect

pytestmark = pytest.mark.e2e
Emulator = Callable[..., Any]
FILLERS = 1999


def _contact(rid: int, name: str) -> dict[str, Any]:
    return {"@collection": "shop", "id": f"c{rid}", "email": f"user{rid}@example.com",
            "firstname": name}


async def _held(url: str, emu: Any) -> str:
    while emu.stats()["queue_depth"]:
        await asyncio.sleep(0.01)
    await asyncio.sleep(1.1)  # the read counts against the 4/s window the run just used
    async with (aiohttp.ClientSession(headers={"X-Ometria-Auth": KEY}) as session,
                session.get(f"{url}/contacts/shop/c0") as response):
        assert response.status == 200, await response.text()
        return str((await response.json())["firstname"])


def _past_b(position: list[Any] | None) -> bool:
    """A checkpoint past ``c0 B`` (line 1) and short of the final ``c0 A``."""
    return position is not None and 100 <= position[1] < FILLERS


def _sqlite_past_b(workspace: Workspace) -> Wait:
    return once(lambda: _past_b(sqlite_position(workspace.root)))


def _postgres_past_b(schema: str) -> Wait:
    async def wait(proc: Process) -> None:
        conn = await connect()
        try:
            for _ in range(600):
                if proc.returncode is not None:
                    return
                try:
                    text = await conn.fetchval(
                        f"SELECT position FROM {schema}.checkpoints WHERE stream = 'contacts'")
                except asyncpg.UndefinedTableError:  # no table yet: the run is starting
                    text = None
                if _past_b(json.loads(text) if text else None):
                    return
                await asyncio.sleep(0.05)
            pytest.fail("the run did not reach the moment to kill it in 30 s")
        finally:
            await conn.close()
    return wait


@pytest.mark.parametrize(("state", "trial"),
                         [("sqlite", 0), ("sqlite", 1), ("sqlite", 2), ("postgres", 0)])
async def test_a_revert_after_a_kill_between_its_checkpoint_and_hashes_is_still_sent(
        workspace: Workspace, emulator: Emulator, pg_schema: str, state: str,
        trial: int) -> None:
    data = workspace.root / "data/contacts.jsonl"
    streams = CONTACTS
    if state == "postgres":
        streams = f'[state]\ncheckpoint_url_env = "STATE_URL"\nschema = "{pg_schema}"\n' + CONTACTS
        workspace.extra_env = {"STATE_URL": DSN}
    workspace.job(streams, rate_limit_per_second=4, batch_size=100, concurrency=2)
    kill_at = _postgres_past_b(pg_schema) if state == "postgres" else _sqlite_past_b(workspace)
    async with emulator(rate=4, seed=trial) as emu:
        jsonl(data, [_contact(0, "A")])
        first = await workspace.run("run", "job.toml", url=emu.url)
        assert first.code == 0, first.stderr
        assert await _held(emu.url, emu) == "A"
        jsonl(data, [_contact(0, "B"), *(_contact(i, "filler") for i in range(1, FILLERS + 1)),
                     _contact(0, "A")])
        result = await crash_trials([workspace], emu.url, 1, kill_at)
        assert result.code == 0, result.stderr
        held = await _held(emu.url, emu)
    assert held == "A", f"Ometria kept {held!r}; the source's last version of c0 is 'A'"
