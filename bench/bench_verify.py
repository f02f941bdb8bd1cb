"""``verify`` at Ometria's rate: the issue's trial and what reading back costs.

Against the emulator at 4 requests/s losing 2% of imports (half of them silently), with 10,000
orders and 5,000 contacts: a run, then ``verify --all`` (must find exactly the lost records),
``--repair`` and a second ``verify``; ``--sample 500`` time; and requests per verified record
for list pages against single look-ups (``--method single`` on a sample).

    .venv/bin/python bench/bench_verify.py [--orders 10000] [--contacts 5000] [--rate 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import KEY, data_file, engine_env, logged_emulator

from ometria_sync.emulator.behaviour import STORE


def _job(folder: Path, contacts: Path, orders: Path, rate: float) -> Path:
    job = folder / "job.toml"
    job.write_text(
        f"[ometria]\nbase_url = \"http://127.0.0.1:9/v2\"\nrate_limit_per_second = {rate}\n\n"
        "[report]\nprogress = \"off\"\n\n"
        f"[[streams]]\nname = \"contacts\"\nrecord_type = \"contact\"\n"
        f"source = {{ kind = \"jsonl\", path = \"{contacts}\" }}\n\n"
        f"[[streams]]\nname = \"orders\"\nrecord_type = \"order\"\n"
        f"source = {{ kind = \"jsonl\", path = \"{orders}\" }}\n")
    return job


async def _cli(url: str, *args: str) -> tuple[int, str, float]:
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ometria_sync", *args, "--log-format", "json", "-q",
        env=engine_env(url), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode is not None
    if proc.returncode not in (0, 3):
        print(err.decode()[-2000:], file=sys.stderr)
    return proc.returncode, out.decode(), time.monotonic() - started


def _streams(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["stream"]: s for s in report["streams"]}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--contacts", type=int, default=5_000)
    parser.add_argument("--rate", type=float, default=4.0)
    parser.add_argument("--failure-rate", type=float, default=0.02)
    parser.add_argument("--single-sample", type=int, default=100,
                        help="records per stream looked up one by one")
    args = parser.parse_args()
    contacts, orders = data_file("contact", args.contacts), data_file("order", args.orders)
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        job = str(_job(Path(tmp), contacts, orders, args.rate))
        async with logged_emulator(api_key=KEY, rate=args.rate,
                                   import_failure_rate=args.failure_rate,
                                   silent_share=0.5) as emu:
            code, _, seconds = await _cli(emu.url, "run", job)
            while emu.stats()["queue_depth"]:
                await asyncio.sleep(0.05)
            lost = {("contacts" if x["type"] == "contact" else "orders", x["id"]): x
                    for x in emu.app[STORE].lost}
            silent = sum(1 for x in lost.values() if x["silent"])
            print(f"run: exit {code} in {seconds:.0f} s; lost at import: {len(lost)} "
                  f"({silent} silently)")

            code, out, seconds = await _cli(emu.url, "verify", job, "--all", "--json")
            report = json.loads(out)
            found = {(r["stream"], r["id"]) for r in report["records"]
                     if r["status"] != "verified"}
            print(f"verify --all: exit {code} in {seconds:.1f} s, {report['requests']} requests;"
                  f" found {len(found)}: false alarms {len(found - set(lost))}, "
                  f"missed {len(set(lost) - found)}")
            for name, s in _streams(report).items():
                print(f"  {name}: {s['checked']} records, method {s['method']}, "
                      f"{s['requests']} requests = {s['requests'] / s['checked']:.4f} per record")

            code, out, seconds = await _cli(emu.url, "verify", job, "--repair", "--settle", "2",
                                            "--json")
            repaired = {n: s["repaired"] for n, s in _streams(json.loads(out)).items()}
            print(f"verify --repair: exit {code} in {seconds:.1f} s, resent {repaired}")
            code, out, seconds = await _cli(emu.url, "verify", job, "--json")
            again = [r for r in json.loads(out)["records"] if r["status"] != "verified"]
            print(f"second verify: exit {code} in {seconds:.1f} s, not verified: {len(again)}")

            code, out, seconds = await _cli(emu.url, "verify", job, "--sample", "500", "--json")
            sample = json.loads(out)
            print(f"verify --sample 500: exit {code} in {seconds:.1f} s, "
                  f"{sample['requests']} requests (seed {sample['seed']})")

            n = args.single_sample
            code, out, seconds = await _cli(emu.url, "verify", job, "--sample", str(n),
                                            "--seed", "1", "--method", "single", "--json")
            single = json.loads(out)
            for name, s in _streams(single).items():
                print(f"  single look-ups, {name}: {s['checked']} records, {s['requests']} "
                      f"requests = {s['requests'] / s['checked']:.2f} per record")
            print(f"verify --sample {n} --method single: {seconds:.1f} s")


if __name__ == "__main__":
    asyncio.run(main())
