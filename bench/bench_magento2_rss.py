"""Where the Magento backfill's resident memory goes, by size (issue 30, "RSS stays flat").

    .venv/bin/python bench/bench_magento2_rss.py [--sizes 0.1,1] [--rate 200] [--no-night2]
        [--variant NAME=KEY=VALUE,KEY=VALUE ...]
        [--inside [--keep DIR] [--trace FRAMES] [--census SECONDS]]
    (MariaDB at 127.0.0.1:3306 as root without a password; databases of its own, dropped)

For each size (a fraction of 50,000 customers, 20,000 products and 200,000 orders), one
database seeded as ``tests/e2e/magento2_scale.py`` seeds it, then for each variant (``this``:
this tree as it is; ``--variant main=PYTHONPATH=/work/main`` runs another checkout's code;
``--variant arena1=MALLOC_ARENA_MAX=1`` changes the child's environment) night 1 of the three
preset streams through the real CLI against a fresh emulator, fresh state; then 1% of the
rows changed and 0.5% touched, and night 2 of each variant on its own state. The variants run
one after the other within a size, so their figures are side by side.

Each CLI run is sampled every 0.2 s by ``bench/rss_probe.py``: its resident kB by group of
mapping at the peak of the total (glibc's main heap, glibc's thread arenas, other anonymous
mappings such as pymalloc's arenas, the state's files by name, libraries), and with
``--inside`` glibc's and pymalloc's own figures nearest that peak.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rss_probe import Probe, inside_at_peak, inside_env

from ometria_sync.emulator import EmulatorOptions, running_emulator
from tests.e2e.conftest import KEY, Workspace
from tests.e2e.magento2_scale import JOB, Model, _night2_changes, seed
from tests.mysql import Database, connect

FULL = (50_000, 20_000, 200_000)


async def one_night(workspace: Workspace, rate: int, inside: Path | None,
                    keep: Path | None = None, timeout: float = 1800) -> dict[str, Any]:
    async with running_emulator(EmulatorOptions(api_key=KEY, port=0, seed=1, rate=rate)) as emu:
        proc = await workspace.start("run", "job.toml", url=emu.url)
        probe = Probe(proc.pid, str(workspace.root / "state"))
        sampling = asyncio.create_task(probe.run())
        _, err = await asyncio.wait_for(proc.communicate(), timeout)
        await sampling
    if proc.returncode not in (0, 3):
        raise SystemExit(f"run exited {proc.returncode}: {err.decode()[-2000:]}")
    figures: dict[str, Any] = {"exit": proc.returncode, "samples": probe.samples,
                               "peak_s": probe.peak_time,
                               **{f"at peak {k}": v for k, v in probe.at_peak.items()},
                               **{f"most {k}": v for k, v in probe.most.items()}}
    if inside is not None:
        figures.update({f"inside {k}": v for k, v in
                        inside_at_peak(inside, probe.peak_time).items()})
        if keep is not None:
            shutil.copy(inside, keep)
            keep.with_name(keep.name + ".log").write_bytes(err)
            for suffix in (".top", ".census"):
                extra = inside.with_name(inside.name + suffix)
                if extra.exists():
                    shutil.copy(extra, keep.with_name(keep.name + suffix))
                    extra.write_text("")
        inside.write_text("")
    return figures


def report(label: str, runs: dict[str, dict[str, Any]]) -> None:
    names = list(runs)
    keys = sorted({k for figures in runs.values() for k in figures},
                  key=lambda k: (not k.startswith("at peak"), not k.startswith("most"), k))
    print(f"\n{label}" + "".join(f"{name:>16}" for name in names))
    for key in keys:
        cells = []
        for name in names:
            value = runs[name].get(key, "")
            if isinstance(value, float):
                cells.append(f"{value:>16,.1f}")
            elif isinstance(value, int) and (key.startswith(("at peak", "most")) or "glibc" in key
                                             or key.endswith(("_in_blocks", "_in_use"))):
                unit = 1024 if key.startswith(("at peak", "most")) else 2**20
                cells.append(f"{value / unit:>13,.1f} MB")
            else:
                cells.append(f"{value!s:>16}")
        print(f"  {key:<58}" + "".join(cells))
    sys.stdout.flush()


async def at_size(fraction: float, variants: dict[str, dict[str, str]], rate: int,
                  night2: bool, inside: bool, keep: Path | None) -> None:
    customers, products, orders = (round(n * fraction) for n in FULL)
    admin = await connect()
    name = f"m2rss_{uuid.uuid4().hex[:10]}"
    async with admin.cursor() as cursor:
        await cursor.execute(f"CREATE DATABASE {name}")
    db = Database(await connect(name), name)
    root = Path(tempfile.mkdtemp(prefix="m2rss-"))
    try:
        model: Model = await seed(db, customers, products, orders)
        spaces: dict[str, tuple[Workspace, Path | None]] = {}
        for variant, env in variants.items():
            extra = {"MAGENTO_DSN": db.dsn, **env}
            out = None
            if inside:
                probe_env, out = inside_env(root / f"probe-{variant}")
                if "PYTHONPATH" in env:
                    probe_env["PYTHONPATH"] += ":" + env["PYTHONPATH"]
                extra.update(probe_env)
            workspace = Workspace(root / variant, extra_env=extra)
            workspace.root.mkdir()
            workspace.job(JOB.format(page=1000), rate_limit_per_second=rate,
                          request_timeout=30)
            spaces[variant] = (workspace, out)
        label = f"{customers:,} customers, {products:,} products, {orders:,} orders"
        def kept(variant: str, night: int) -> Path | None:
            return keep / f"{fraction}-{variant}-night{night}.jsonl" if keep else None

        first = {v: await one_night(w, rate, out, kept(v, 1)) for v, (w, out) in spaces.items()}
        report(f"night 1, {label}", first)
        if night2:
            await _night2_changes(db, model)
            second = {v: await one_night(w, rate, out, kept(v, 2))
                      for v, (w, out) in spaces.items()}
            report(f"night 2, {label}", second)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        db.conn.close()
        async with admin.cursor() as cursor:
            await cursor.execute(f"DROP DATABASE {name}")
        admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0.1,1")
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--no-night2", action="store_true")
    parser.add_argument("--inside", action="store_true",
                        help="also glibc's and pymalloc's own figures (a probe thread)")
    parser.add_argument("--keep", type=Path,
                        help="with --inside: keep each run's inside lines in this folder")
    parser.add_argument("--trace", type=int, default=0,
                        help="with --inside: tracemalloc with this many frames (slow)")
    parser.add_argument("--census", type=float, default=0,
                        help="with --inside: objects by type every this many seconds")
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME=KEY=VALUE[,KEY=VALUE]: the child's environment; NAME= alone: "
                             "as it is")
    args = parser.parse_args()
    variants: dict[str, dict[str, str]] = {}
    for spec in args.variant or ["this="]:
        name, _, pairs = spec.partition("=")
        variants[name] = dict(pair.split("=", 1) for pair in pairs.split(",") if pair)
    if args.trace:
        os.environ["RSS_PROBE_TRACE"] = str(args.trace)
    if args.census:
        os.environ["RSS_PROBE_CENSUS"] = str(args.census)
    for fraction in (float(s) for s in args.sizes.split(",")):
        asyncio.run(at_size(fraction, variants, args.rate, not args.no_night2, args.inside,
                            args.keep))


if __name__ == "__main__":
    main()
