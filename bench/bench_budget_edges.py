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
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))  # tests.redis_server; PYTHONPATH first

import redis.asyncio as aioredis

from ometria_sync.emulator import EmulatorOptions, running_emulator
from ometria_sync.errors import ThrottledError
from ometria_sync.ometria.client import OmetriaClient
from ometria_sync.pacing.redis_budget import account_prefix
from ometria_sync.pacing.shared_budget import SharedBudget
from tests.redis_server import PrivateRedis

KEY = "bench-key"
BODY = b'[{"@type": "contact", "@collection": "shop", "id": "c1", "email": "c@example.com"}]'
RATE = 4.0


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 delay: float) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def pump() -> None:
        while True:
            due, chunk = await queue.get()
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            if not chunk:
                writer.close()
                return
            writer.write(chunk)
            await writer.drain()

    task = asyncio.create_task(pump())
    try:
        while chunk := await reader.read(65536):
            await queue.put((loop.time() + delay, chunk))
        await queue.put((loop.time() + delay, b""))
        await task
    except (ConnectionError, asyncio.CancelledError):
        task.cancel()
        writer.close()


async def proxy(port: int, delay: float) -> tuple[asyncio.Server, int]:
    async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        sr, sw = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.gather(_relay(cr, sw, delay), _relay(sr, cw, 0.0),
                             return_exceptions=True)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1])


async def push_loop(budget: SharedBudget, client: OmetriaClient, until: float) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        slot = await budget.acquire(until_sent=True)
        try:
            result = await client.push(BODY, 1, slot.sent)
        except ThrottledError:
            slot.done()
            continue
        slot.done(jitter=result.network_jitter)


async def row(kind: str, seconds: float, folder: Path) -> dict[str, Any]:
    options = EmulatorOptions(api_key=KEY, rate=RATE, port=0, seed=1, drain_per_second=0.0)
    server = PrivateRedis(folder)
    server.start()
    closers: list[Any] = []
    try:
        async with running_emulator(options) as emu:
            prefix = account_prefix(emu.url, KEY)
            loop = asyncio.get_running_loop()
            until = loop.time() + seconds
            tasks = []
            delays = (0.0, 0.035, 0.060) if kind == "distances" else (0.0, 0.0)
            for delay in delays:
                url = emu.url
                if delay:
                    srv, port = await proxy(emu.port, delay)
                    closers.append(srv)
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
            if isinstance(thing, asyncio.Server):
                thing.close()
            else:
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
