"""``ometria-sync emulator``: serve the local Ometria on 127.0.0.1 until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os

from ometria_sync.cli.common import SubParsers
from ometria_sync.emulator import DEV_KEY, EmulatorOptions, serve
from ometria_sync.errors import ExitCode

#: the port the emulator listens on unless told (``init`` names it in the job it writes)
DEFAULT_PORT = 8765


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _latency(text: str) -> tuple[float, float]:
    """``200-800`` (ms, uniform) or ``300`` (fixed)."""
    try:
        low, _, high = text.partition("-")
        lo, hi = float(low), float(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MS or MIN-MAX in ms, got {text!r}") from None
    if lo < 0 or hi < lo:
        raise argparse.ArgumentTypeError(f"expected 0 <= MIN <= MAX, got {text!r}")
    return lo / 1000, hi / 1000


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("emulator", parents=[common],
                       help="serve a local stand-in for Ometria's API on 127.0.0.1")
    p.add_argument("--host", default="127.0.0.1",
                   help="the address to listen on (loopback: only this machine reaches it)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port (printed)")
    p.add_argument("--api-key", default=None,
                   help=f"the key it accepts (default: $OMETRIA_API_KEY, else {DEV_KEY!r})")
    p.add_argument("--rate", type=float, default=4.0, help="requests per sliding second")
    p.add_argument("--latency", type=_latency, default=(0.0, 0.0), metavar="MS[-MS]",
                   help="answer delay in ms, e.g. 200-800 (uniform; default: 0)")
    p.add_argument("--arrival-jitter", type=_latency, default=(0.0, 0.0), metavar="MS[-MS]",
                   help="delay in ms before an arrival is counted, e.g. 5-20 (a network's "
                        "varying one-way delay; default: 0)")
    p.add_argument("--fail-rate", type=_fraction, default=0.0, help="fraction of 500/503")
    p.add_argument("--drop-rate", type=_fraction, default=0.0,
                   help="fraction of connections closed without an answer")
    p.add_argument("--lost-answer-rate", type=_fraction, default=0.0,
                   help="fraction of pushes accepted whose answer is then lost")
    p.add_argument("--import-failure-rate", type=_fraction, default=0.0, metavar="P",
                   help="fraction of accepted records that then fail at import (listed in "
                        "/push/_errors, or silently: see --silent-share)")
    p.add_argument("--silent-share", type=_fraction, default=0.5,
                   help="of the import failures, the fraction that leave no trace")
    p.add_argument("--fail-batches-with", action="append", default=[], metavar="ID",
                   help="answer 503 to every push holding a record of this id (a batch whose "
                        "retries run out; repeatable)")
    p.add_argument("--queue-capacity", type=int, default=50_000,
                   help="records Ometria's import queue holds; a push beyond it gets 429")
    p.add_argument("--drain-per-second", type=float, default=10_000.0,
                   help="records the import queue processes per second")
    p.add_argument("--retry-after", action="store_true", help="send Retry-After on 429 and 5xx")
    p.add_argument("--store", default=None, help="keep data in this file between starts")
    p.add_argument("--seed", type=int, default=None,
                   help="seed the random failures and delays, to repeat a session "
                        "(default: a random one)")
    p.set_defaults(func=cmd_emulator)


def cmd_emulator(args: argparse.Namespace) -> int:
    key = args.api_key or os.environ.get("OMETRIA_API_KEY") or DEV_KEY
    if key == DEV_KEY:
        print(f"accepting the development key {DEV_KEY!r}", flush=True)
    options = EmulatorOptions(
        host=args.host, port=args.port, api_key=key, rate=args.rate, latency=args.latency,
        arrival_jitter=args.arrival_jitter,
        fail_rate=args.fail_rate, drop_rate=args.drop_rate,
        lost_answer_rate=args.lost_answer_rate,
        import_failure_rate=args.import_failure_rate, silent_share=args.silent_share,
        fail_batches_with=tuple(args.fail_batches_with), queue_capacity=args.queue_capacity,
        drain_per_second=args.drain_per_second, retry_after=args.retry_after, store=args.store,
        seed=args.seed,
    )
    gc.freeze()  # long-lived startup objects: shorter collections, steadier arrival stamps
    asyncio.run(serve(options))
    return ExitCode.OK
