"""The shared budget at its edges: processes at different distances, and Redis restarted.

    .venv/bin/python bench/bench_budget_edges.py [--seconds 10]

In one asyncio process: SharedBudget instances (one per "process", each its own Redis client)
push one-record batches through the real HTTP client to an emulator with the strict sliding
second at 4/s (answers at once), on a PRIVATE redis-server. Rows:

* ``distances 0/35/60``: three processes, 2 workers each, the 2nd and 3rd through TCP proxies
  that delay their bytes to the server by 35 and 60 ms;
* ``restart``: two processes, 2 workers each, near; at a third of the run Redis is killed and
  started again empty, and a new process (2 workers) joins first.

Reported: requests, 429s, arrivals over the limit in a sliding second (the emulator's 429s are
exactly those), the most arrivals in any second, and the share of the limit kept
((n - 1) / (last - first arrival) / 4). Run it against another checkout with
``PYTHONPATH=/that/checkout`` to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))  # tests/: Redis, trials

import redis.asyncio as aioredis

from ometria_sync.emulator import EmulatorOptions, running_emulator
from ometria_sync.ometria.client import OmetriaClient
from ometria_sync.pacing.redis_budget import account_prefix
from ometria_sync.pacing.shared_budget import SharedBudget
from tests.pacing.budget_trials import delaying_proxy, push_once
from tests.redis_server import PrivateRedis

KEY = "bench-key"
RATE = 4.0


async def push_loop(budget: SharedBudget, client: OmetriaClient, until: float) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        await push_once(budget, client)


async def row(kind: str, seconds: float, folder: Path) -> dict[str, Any]:
    options = EmulatorOptions(api_key=KEY, rate=RATE, port=0, seed=1, drain_per_second=0.0)
    server = PrivateRedis(folder)
    server.start()
    closers: list[Any] = []
    try:
        async with running_emulator(options) as emu, contextlib.AsyncExitStack() as proxies:
            prefix = account_prefix(emu.url, KEY)
            loop = asyncio.get_running_loop()
            until = loop.time() + seconds
            tasks = []
            delays = (0.0, 0.035, 0.060) if kind == "distances" else (0.0, 0.0)
            for delay in delays:
                url = emu.url
                if delay:
                    port = await proxies.enter_async_context(delaying_proxy(emu.port, delay))
                    url = f"http://127.0.0.1:{port}/v2"
                budget = SharedBudget(aioredis.from_url(server.url), prefix, RATE,
                                      url=server.url, retry_for=30)
                client = OmetriaClient(url, KEY)
                closers += [budget, client]
                tasks += [push_loop(budget, client, until) for _ in range(2)]
            if kind == "restart":
                async def newcomer() -> None:
                    await asyncio.sleep(seconds / 3)
                    server.kill()
                    server.start()
                    budget = await SharedBudget.connect(server.url, base_url=emu.url,
                                                        api_key=KEY, limit=RATE)
                    client = OmetriaClient(emu.url, KEY)
                    closers.extend([budget, client])
                    await asyncio.gather(*(push_loop(budget, client, until) for _ in range(2)))
                tasks.append(newcomer())
            await asyncio.gather(*tasks)
            stats = emu.stats()
    finally:
        for thing in closers:
            await thing.aclose()
        server.kill()
    budgets = [c for c in closers if isinstance(c, SharedBudget)]
    holds = sum(getattr(b.stats, "holds", 0) for b in budgets)
    spread = max(getattr(b.stats, "spread", 0.0) for b in budgets)
    n = stats["requests"]
    span = stats["last_request_at"] - stats["first_request_at"]
    return {"kind": kind, "requests": n, "429": stats["requests_by_status"].get("429", 0),
            "max": stats["max_requests_in_any_second"], "share": (n - 1) / span / RATE,
            "holds": holds, "spread": spread}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    import ometria_sync

    print(f"code: {Path(ometria_sync.__file__).parent.parent}; limit {RATE:g}/s, "
          f"{args.seconds:g} s per row")
    print(f"{'row':<17} {'requests':>8} {'over (429)':>10} {'max/1s':>6} {'of limit':>8} "
          f"{'holds':>5} {'widest spread ms':>16}")
    for kind in ("distances", "restart"):
        with tempfile.TemporaryDirectory() as folder:
            r = asyncio.run(row(kind, args.seconds, Path(folder)))
        label = "distances 0/35/60" if kind == "distances" else "restart"
        print(f"{label:<17} {r['requests']:>8} {r['429']:>10} {r['max']:>6} {r['share']:>8.1%} "
              f"{r['holds']:>5} {r['spread'] * 1000:>16.1f}", flush=True)


if __name__ == "__main__":
    main()
