"""Every stream reading one Omneo tenant, and every start-up check, goes through one pacer:
at the stand-in no sliding second holds more than the configured Omneo rate, and no 429."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import Workspace
from tests.sources.omneo import samples
from tests.sources.omneo.standin import TOKEN, OmneoData, running_standin

pytestmark = pytest.mark.e2e
Emulator = Callable[..., Any]
RATE = 5

STREAM = """
[[streams]]
name = "{name}"
record_type = "{record_type}"
[streams.source]
kind = "{kind}"
base_url = "{url}"
rate_limit_per_second = {rate}
"""


async def test_three_omneo_streams_and_their_preflights_share_the_tenants_rate(
        workspace: Workspace, emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNEO_TOKEN", TOKEN)
    data = OmneoData()
    for n in range(1, 7):
        data.profiles[samples.profile_id(n)] = samples.profile(n)
        data.aggregations[samples.profile_id(n)] = samples.aggregations(n)
    for n in range(1, 5):
        data.transactions[n] = samples.transaction(n, n, updated=100 + n)
    async with running_standin(data, rate_limit=RATE) as standin, emulator(rate=50) as emu:
        streams = [("contacts", "contact", "omneo_profiles"),
                   ("orders", "order", "omneo_transactions"),
                   ("contacts-again", "contact", "omneo_profiles")]
        workspace.job("".join(STREAM.format(name=n, record_type=t, kind=k, url=standin.url,
                                            rate=RATE) for n, t, k in streams))
        result = await workspace.run("run", "job.toml", url=emu.url)
    busiest = standin.busiest_second()
    print(f"\n{len(standin.seen)} Omneo requests, at most {busiest} in any second "
          f"(limit {RATE}), {standin.throttled} answered 429")
    assert result.code == 0, result.stderr
    assert len(standin.seen) > 3 * RATE  # enough requests for the rate to bind
    assert standin.throttled == 0 and busiest <= RATE
