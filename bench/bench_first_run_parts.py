"""Where a first run's CPU goes, in units of ``json.loads`` of the same lines.

    .venv/bin/python bench/bench_first_run_parts.py [--type contact|order] [--records N]

One first run as ``bench_first_run.py`` makes it (in-process, change detection on, a pusher
that acknowledges every record), with the CPU of a few parts on the event loop's thread
timed by wrappers (``time.thread_time``): the typed lane, the batch records made from it, the
change filter, the reader. The other threads (the state thread's writes) are the process's CPU
less the loop thread's. A part awaited (the change filter) counts whatever the loop ran
meanwhile: an upper bound.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_first_run import first_run, loads_cpu
from benchlib import KEY, data_file, write_job

from ometria_sync.logs import configure_logging
from ometria_sync.pipeline import batcher, change_filter
from ometria_sync.schemas.typed_lane import TypedLane
from ometria_sync.sources.files import jsonl

SPENT: dict[str, float] = {}


def _timed(owner: Any, name: str, label: str, awaited: bool = False) -> None:
    """Wrap ``owner.name`` so that its thread CPU adds up under ``label``."""
    orig: Callable[..., Any] = getattr(owner, name)

    def plain(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return orig(*args, **kwargs)
        finally:
            SPENT[label] = SPENT.get(label, 0.0) + time.thread_time() - started

    async def waited(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return await orig(*args, **kwargs)
        finally:
            SPENT[label] = SPENT.get(label, 0.0) + time.thread_time() - started

    setattr(owner, name, waited if awaited else plain)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--type", default="contact", choices=("contact", "order"))
    parser.add_argument("--records", type=int, default=200_000)
    args = parser.parse_args()
    configure_logging("json", "error")
    os.environ["OMETRIA_API_KEY"] = KEY
    _timed(TypedLane, "accept_keyed", "the lane: decode, column checks, encode")
    _timed(batcher, "typed_records", "batch records and id hashes (typed_records)")
    _timed(change_filter.ChangeFilter, "unchanged",
           "ChangeFilter.unchanged: content hash + look-up", awaited=True)
    _timed(jsonl.JsonlPart, "_raw_chunk", "reader: lines and their positions")
    data = data_file(args.type, args.records)
    _, loads = loads_cpu(data)
    job = write_job(Path(tempfile.mkdtemp()) / args.type, data, args.type,
                    rate_limit_per_second=10_000)
    process, thread = time.process_time(), time.thread_time()
    asyncio.run(first_run(job))
    process, thread = time.process_time() - process, time.thread_time() - thread
    print(f"{args.type}: json.loads {loads:.2f} s; first run {process:.2f} s = "
          f"{process / loads:.2f}x (ratio {loads / process:.2f}x)")
    rest = thread
    for label, spent in SPENT.items():
        print(f"  {label:<52} {spent / loads:5.2f}x")
        rest -= spent
    print(f"  {'the rest of the loop thread':<52} {rest / loads:5.2f}x")
    print(f"  {'other threads (the state thread)':<52} {(process - thread) / loads:5.2f}x")


if __name__ == "__main__":
    main()
