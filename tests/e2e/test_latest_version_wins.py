"""The promise, end to end: after a run that exits 0, Ometria holds the source's last version of
every id, read back from the emulator, however ids repeat and however the network fails.

A change log repeats each id with different versions (and a second night's log reverts some ids
to what the first night left), pushed through 10% 500/503 answers that carry Retry-After, 3%
answers lost after the records were taken, and four dispatchers, at batch sizes 1, 10 and 100.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import CONTACTS, KEY, Workspace, jsonl

IDS = 30
pytestmark = pytest.mark.e2e


def _version(rid: int, label: str) -> dict[str, Any]:
    return {"@collection": "shop", "id": f"c{rid}", "email": f"user{rid}@example.com",
            "firstname": label}


def _first_night(rng: random.Random) -> list[dict[str, Any]]:
    """Four versions of each id, interleaved at random (each id's versions in order)."""
    pending = {rid: [f"n1-v{k}" for k in range(4)] for rid in range(IDS)}
    log = []
    while pending:
        rid = rng.choice(sorted(pending))
        log.append(_version(rid, pending[rid].pop(0)))
        if not pending[rid]:
            del pending[rid]
    return log


def _second_night(rng: random.Random) -> list[dict[str, Any]]:
    """Each id changes, then half of them go back to the first night's last version."""
    log = [_version(rid, "n2-changed") for rid in rng.sample(range(IDS), IDS)]
    log += [_version(rid, "n1-v3" if rid % 2 else "n2-final")
            for rid in rng.sample(range(IDS), IDS)]
    return log


def _last_versions(log: list[dict[str, Any]]) -> dict[str, str]:
    return {r["id"]: r["firstname"] for r in log}


async def _read_back(url: str) -> dict[str, str]:
    """Every id as Ometria holds it (``GET /v2/contacts/{collection}/{id}``), paced under the
    emulator's 50/s."""
    held: dict[str, str] = {}
    async with aiohttp.ClientSession(headers={"X-Ometria-Auth": KEY}) as session:
        for rid in range(IDS):
            async with session.get(f"{url}/contacts/shop/c{rid}") as response:
                assert response.status == 200, await response.text()
                held[f"c{rid}"] = (await response.json())["firstname"]
            await asyncio.sleep(0.025)
    return held


async def _drained(emu: Any) -> None:
    while emu.stats()["queue_depth"]:
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("batch_size", [1, 10, 100])
async def test_every_id_ends_on_the_sources_last_version(
    workspace: Workspace, emulator: Any, batch_size: int
) -> None:
    rng = random.Random(batch_size)
    data = workspace.root / "data/contacts.jsonl"
    workspace.job(CONTACTS, rate_limit_per_second=50, batch_size=batch_size, concurrency=4,
                  max_retries=30, backoff_base=0.02, backoff_cap=0.2)
    async with emulator(rate=50, fail_rate=0.1, lost_answer_rate=0.03, retry_after=True,
                        latency=(0.005, 0.03), seed=batch_size) as emu:
        for night in (_first_night(rng), _second_night(rng)):
            jsonl(data, night)
            result = await workspace.run("run", "job.toml", url=emu.url)
            assert result.code == 0, result.stderr[-3000:]
            await _drained(emu)
            assert await _read_back(emu.url) == _last_versions(night)
        statuses = emu.stats()["requests_by_status"]
    assert set(statuses) - {"202"}, statuses  # the faults really happened
