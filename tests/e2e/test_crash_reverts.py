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
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import CONTACTS, KEY, Workspace, jsonl
from tests.e2e.crash_trials import crash_trials, once, sqlite_position

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


def _past_b_before_the_end(workspace: Workspace) -> Callable[[], bool]:
    def reached() -> bool:
        saved = sqlite_position(workspace.root)
        return saved is not None and 100 <= saved[1] < FILLERS
    return reached


@pytest.mark.parametrize("trial", range(3))
async def test_a_revert_after_a_kill_between_its_checkpoint_and_hashes_is_still_sent(
        workspace: Workspace, emulator: Emulator, trial: int) -> None:
    data = workspace.root / "data/contacts.jsonl"
    workspace.job(CONTACTS, rate_limit_per_second=4, batch_size=100, concurrency=2)
    async with emulator(rate=4, seed=trial) as emu:
        jsonl(data, [_contact(0, "A")])
        first = await workspace.run("run", "job.toml", url=emu.url)
        assert first.code == 0, first.stderr
        assert await _held(emu.url, emu) == "A"
        jsonl(data, [_contact(0, "B"), *(_contact(i, "filler") for i in range(1, FILLERS + 1)),
                     _contact(0, "A")])
        result = await crash_trials([workspace], emu.url, 1,
                                    once(_past_b_before_the_end(workspace)))
        assert result.code == 0, result.stderr
        held = await _held(emu.url, emu)
    assert held == "A", f"Ometria kept {held!r}; the source's last version of c0 is 'A'"
