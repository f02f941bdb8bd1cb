"""Peak RSS of reading a file with one huge line (default 51 MB) between two good lines,
JSON Lines and CSV, each in a fresh child process: the line cap keeps memory flat.

    .venv/bin/python bench/bench_long_line.py [--mb 51] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

MB = 1 << 20


def write_files(folder: Path, mb: int) -> tuple[Path, Path]:
    jsonl, csv = folder / "long.jsonl", folder / "long.csv"
    with jsonl.open("wb") as fh:
        fh.write(b'{"id": "before"}\n{"id": "huge", "blob": "')
        for _ in range(mb):
            fh.write(b"x" * MB)
        fh.write(b'"}\n{"id": "after"}\n')
    with csv.open("wb") as fh:
        fh.write(b"id,email\nc1,a@example.com\nc2,")
        for _ in range(mb):
            fh.write(b"x" * MB)
        fh.write(b"\nc3,c@example.com\n")
    return jsonl, csv


async def _read(kind: str, path: Path) -> int:
    from ometria_sync.sources.files.location import LocalFile

    items = 0
    if kind == "jsonl":
        from ometria_sync.sources.files.jsonl import JsonlPart

        part = JsonlPart(LocalFile(path))
    else:
        from ometria_sync.sources.files.csv import CsvOptions, CsvPart

        part = CsvPart(LocalFile(path), CsvOptions(columns={"email": "email"}))  # type: ignore[assignment]
    async for chunk in part.read(None):
        items += len(chunk)
    return items


def child(kind: str, path: Path) -> None:
    import ometria_sync.sources.files.csv  # noqa: F401  (imports out of the measure)

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    items = asyncio.run(_read(kind, path))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{items} {before} {after}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=51)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    with tempfile.TemporaryDirectory(prefix="ometria-long-line-") as tmp:
        files = dict(zip(("jsonl", "csv"), write_files(Path(tmp), args.mb), strict=True))
        print(f"one {args.mb} MB line between two good lines; peak RSS of a fresh process "
              f"(median of {args.repeat})")
        print(f"{'source':<8}{'items':>7}{'RSS before read':>18}{'peak RSS':>11}{'growth':>9}")
        for kind, path in files.items():
            runs = []
            for _ in range(args.repeat):
                out = subprocess.run([sys.executable, __file__, "--child", kind, str(path)],
                                     check=True, capture_output=True, text=True).stdout
                items, before, after = (int(x) for x in out.split())
                runs.append((before, after))
            before_mb = statistics.median(r[0] for r in runs) / 1024
            after_mb = statistics.median(r[1] for r in runs) / 1024
            print(f"{kind:<8}{items:>7}{before_mb:>15.1f} MB{after_mb:>8.1f} MB"
                  f"{after_mb - before_mb:>6.1f} MB")


if __name__ == "__main__":
    main()
