"""``ometria-sync demo JOB``: the quick start. Runs a job against a fresh local emulator.

It starts the emulator on a free loopback port, points the job at it with a throwaway key and
a temporary state folder (unless ``--state`` names one), runs the job exactly as ``run`` would,
then reads back from the emulator what arrived. Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from ometria_sync.cli.common import SubParsers, print_summary
from ometria_sync.config import Job, load_job
from ometria_sync.emulator import EmulatorOptions, running_emulator
from ometria_sync.net import sqlite_url
from ometria_sync.pipeline import JobResult, run_job
from ometria_sync.report import show_progress


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    demo = sub.add_parser(
        "demo", parents=[common],
        help="run a job against a freshly started local emulator and show what arrived",
    )
    demo.add_argument("job", help="the job file (its base_url and key are replaced)")
    demo.add_argument("--rate", type=float, default=None,
                      help="the emulator's and the job's rate limit (default: the job's)")
    demo.add_argument("--state", type=Path, default=None,
                      help="keep state here instead of a temporary folder")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    job = load_job(args.job)
    with tempfile.TemporaryDirectory(prefix="ometria-sync-demo-") as tmp:
        state = args.state or Path(tmp)
        return asyncio.run(_demo(job, state, args.rate))


async def _demo(job: Job, state: Path, rate: float | None) -> int:
    key = "demo-" + secrets.token_hex(8)
    limit = rate or job.settings.ometria.rate_limit_per_second
    options = EmulatorOptions(port=0, api_key=key, rate=limit, latency=(0.05, 0.2))
    async with running_emulator(options) as emu:
        print(f"emulator listening on {emu.url} (rate limit {limit:g} requests/s)")
        demo_job = _point_at(job, emu.url, state, limit)
        os.environ["OMETRIA_DEMO_KEY"] = key
        result = await run_job(demo_job, observer=show_progress)
        print()
        print_summary(result.streams, sys.stdout)
        await _show_arrivals(emu.url, key, result)
        stats = emu.stats()
    print("\nemulator stats:", msgspec.json.encode(stats).decode())
    return result.exit_code


def _point_at(job: Job, url: str, state: Path, rate: float) -> Job:
    s = job.settings
    ometria = msgspec.structs.replace(
        s.ometria, base_url=url, api_key_env="OMETRIA_DEMO_KEY", api_key_file=None,
        rate_limit_per_second=rate,
    )
    state_settings = msgspec.structs.replace(
        s.state,
        checkpoint_url=sqlite_url(str(state / "checkpoints.db")),
        dead_letter_path=str(state / "dead-letter.jsonl"),
        dry_run_dir=str(state / "dry-run"),
    )
    settings = msgspec.structs.replace(s, ometria=ometria, state=state_settings)
    return msgspec.structs.replace(job, settings=settings)


async def _show_arrivals(url: str, key: str, result: JobResult) -> None:
    """Read back one record of each stream's type from the emulator, as Ometria would show it."""
    headers = {"X-Ometria-Auth": key}
    async with aiohttp.ClientSession(headers=headers) as http:
        await asyncio.sleep(1.0)  # the emulator imports asynchronously, like Ometria
        orders = await _get(http, f"{url}/orders?limit=3")
        profiles = await _get(http, f"{url}/profiles?limit=2")
    print("\nread back from the emulator:")
    if isinstance(orders, list):
        print(f"  GET /orders?limit=3 -> {len(orders)} orders, first: "
              f"{_short(orders[0]) if orders else '-'}")
    if isinstance(profiles, list):
        print(f"  GET /profiles?limit=2 -> {len(profiles)} profiles, first: "
              f"{_short(profiles[0]) if profiles else '-'}")


async def _get(http: aiohttp.ClientSession, url: str) -> Any:
    for _ in range(5):
        async with http.get(url) as resp:
            if resp.status == 429:
                await asyncio.sleep(1.0)
                continue
            return await resp.json()
    return None


def _short(value: Any, limit: int = 200) -> str:
    text = msgspec.json.encode(value).decode()
    return text if len(text) <= limit else text[:limit] + "..."
