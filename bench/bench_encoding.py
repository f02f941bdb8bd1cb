"""Reading speed by text encoding: CSV and JSON Lines parts read whole (no validation), UTF-8
against cp1252, and this tree against another checkout of the package (``--baseline``), side
by side in one run.

    git archive <commit> | tar -x -C /tmp/base
    .venv/bin/python bench/bench_encoding.py --baseline /tmp/base [--rows 200000] [--repeat 5]

Each measurement is a fresh process that imports the package from one tree and reads one file:
records per CPU second (``time.process_time``). Rounds interleave the variants, so a busy
machine slows them alike; medians of ``--repeat`` rounds, and the ratio to the baseline's UTF-8.
The UTF-8 rows are the fast path, which the ``encoding`` option must not slow down.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
NAMES = ["Ann", "Zoë", "Renée", "José", "Bob", "Anaïs", "Tom", "Françoise"]


def write_files(folder: Path, rows: int) -> dict[str, Path]:
    """The same contacts as CSV and JSON Lines, each in UTF-8 and cp1252."""
    files = {}
    for encoding in ("utf-8", "cp1252"):
        csv_path, jsonl_path = folder / f"c-{encoding}.csv", folder / f"c-{encoding}.jsonl"
        with csv_path.open("w", encoding=encoding) as fh:
            fh.write("id,email,firstname,lastname,city\n")
            for n in range(rows):
                fh.write(f"c{n},user{n}@example.com,{NAMES[n % 8]},Smith,London\n")
        with jsonl_path.open("w", encoding=encoding) as fh:
            for n in range(rows):
                fh.write(json.dumps({"id": f"c{n}", "email": f"user{n}@example.com",
                                     "firstname": NAMES[n % 8], "lastname": "Smith"},
                                    ensure_ascii=False) + "\n")
        files[f"csv {encoding}"], files[f"jsonl {encoding}"] = csv_path, jsonl_path
    return files


async def _read(kind: str, path: str, encoding: str) -> int:
    from ometria_sync.sources.files.csv import CsvOptions, CsvPart
    from ometria_sync.sources.files.jsonl import JsonlPart
    from ometria_sync.sources.files.location import LocalFile

    extra = {} if encoding == "utf-8" else {"encoding": encoding}
    part: CsvPart | JsonlPart
    if kind == "csv":
        part = CsvPart(LocalFile(Path(path)), CsvOptions(**extra))  # type: ignore[arg-type]
    else:
        part = JsonlPart(LocalFile(Path(path)), **extra)  # type: ignore[arg-type]
    count = 0
    async for chunk in part.read(None):
        count += sum(1 for item in chunk if item.error is None)
    return count


def child(tree: str, kind: str, path: str, encoding: str) -> None:
    sys.path.insert(0, tree)
    import ometria_sync

    assert Path(ometria_sync.__file__).is_relative_to(tree), ometria_sync.__file__
    started = time.process_time()
    count = asyncio.run(_read(kind, path, encoding))
    print(count, time.process_time() - started)


def measure(tree: Path, kind: str, path: Path, encoding: str) -> tuple[int, float]:
    out = subprocess.run([sys.executable, __file__, "--child", str(tree), kind, str(path),
                          encoding], check=True, capture_output=True, text=True).stdout.split()
    return int(out[0]), float(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path,
                        help="a checkout of the package to compare with (its root folder)")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.baseline is None:
        parser.error("--baseline is required")
    variants = [("baseline", args.baseline, "utf-8"), ("this tree", HERE, "utf-8"),
                ("this tree", HERE, "cp1252")]
    with tempfile.TemporaryDirectory() as tmp:
        files = write_files(Path(tmp), args.rows)
        print(f"{'format':<6} {'tree':<10} {'encoding':<8} {'records/CPU-s':>14} "
              f"{'vs baseline':>12}")
        for kind in ("csv", "jsonl"):
            rates: dict[int, list[float]] = {i: [] for i in range(len(variants))}
            for _ in range(args.repeat):
                for i, (_, tree, encoding) in enumerate(variants):
                    count, seconds = measure(tree, kind, files[f"{kind} {encoding}"], encoding)
                    assert count == args.rows, (kind, encoding, count)
                    rates[i].append(count / seconds)
            base = statistics.median(rates[0])
            for i, (name, _, encoding) in enumerate(variants):
                rate = statistics.median(rates[i])
                print(f"{kind:<6} {name:<10} {encoding:<8} {rate:>14,.0f} {rate / base:>12.3f}")


if __name__ == "__main__":
    main()
