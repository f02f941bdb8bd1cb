"""The typed lane alone: ``TypedLane.accept_keyed`` over a bench data file, in units of
``json.loads`` of the same lines.

    .venv/bin/python bench/bench_typed_lane.py [--type contact|order] [--records N] [--repeat 5]

The file's lines are read into memory and cut into slices of the batcher's ``_LANE_SLICE``;
each round times, a few slices at a time in turn, ``json.loads`` of their lines and
``accept_keyed`` of the slices (thread CPU time), so that machine noise hits both alike.
Prints each round and the median ratio (lane CPU / ``json.loads`` CPU: lower is better). Run
it with another tree's interpreter (``/tmp/base/.venv/bin/python bench/bench_typed_lane.py``)
to time that tree's lane on the same lines.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

# imported first: the lane of the interpreter's own tree (benchlib puts this tree on sys.path)
import ometria_sync
from ometria_sync.schemas import typed_lane

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import data_file

SLICE = 256  # as the batcher's _LANE_SLICE
BLOCK = 8  # slices timed in turn with their json.loads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--type", default="contact", choices=("contact", "order"))
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--mode", default="update", choices=("update", "create"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    lines = data_file(args.type, args.records).read_bytes().splitlines()
    slices = [lines[i:i + SLICE] for i in range(0, len(lines), SLICE)]
    lane = typed_lane(args.type, args.mode)
    assert lane is not None
    accept, loads = lane.accept_keyed, json.loads
    if any(accept(s) is None for s in slices):
        raise SystemExit("the lane refused a slice of the bench data")
    ratios = []
    for _ in range(args.repeat):
        base = spent = 0.0
        for block in range(0, len(slices), BLOCK):  # alternating often: load changes hit both
            started = time.thread_time()
            for part in slices[block:block + BLOCK]:
                for line in part:
                    loads(line)
            middle = time.thread_time()
            for part in slices[block:block + BLOCK]:
                accept(part)
            base += middle - started
            spent += time.thread_time() - middle
        ratios.append(spent / base)
        print(f"  json.loads {base:.3f} s, lane {spent:.3f} s = {spent / base:.3f}x "
              f"({spent / len(lines) * 1e6:.2f} us a record)")
    print(f"{args.type} ({Path(ometria_sync.__file__).parents[1]}): "
          f"lane / json.loads median {statistics.median(ratios):.3f}x")


if __name__ == "__main__":
    main()
