"""The ``ometria-sync`` command: argument parsing and exit codes only; the work is elsewhere.

Exit codes: 0 all delivered (or refused only as an earlier run refused them: ``[run]
exit_on``); 3 finished with something new to look at (new refusals, rejected, unconfirmed or
parked records); 1 fatal (configuration, refused key, server unreachable after retries); 2
usage error; 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ometria_sync._version import __version__
from ometria_sync.cli import (
    alerts,
    dead_letter,
    demo,
    emulator,
    fields,
    history,
    init,
    job,
    plan,
    report,
    trace,
    verify,
)
from ometria_sync.cli.common import HelpFormatter, silence_stdout
from ometria_sync.cli.job import run
from ometria_sync.errors import ConfigError, ExitCode
from ometria_sync.logs import configure_logging

__all__ = ["build_parser", "entry", "main", "run"]


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("output")
    group.add_argument(
        "--log-format", choices=("auto", "console", "json"), default="auto",
        help="console on a terminal, JSON lines otherwise (default: auto)",
    )
    group.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default=None,
        help="minimum level logged (default: info)",
    )
    group.add_argument("-v", "--verbose", action="store_true", help="same as --log-level debug")
    group.add_argument("-q", "--quiet", action="store_true", help="same as --log-level warning")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="ometria-sync",
        description="Bulk sync of customer data into Ometria, at the full rate limit, resumable.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    job.register(sub, common)
    dead_letter.register(sub, common)
    emulator.register(sub, common)
    demo.register(sub, common)
    plan.register(sub, common)
    report.register(sub, common)
    history.register(sub, common)
    alerts.register(sub, common)
    verify.register(sub, common)
    trace.register(sub, common)
    fields.register(sub, common)
    init.register(sub, common)
    for command in sub.choices.values():  # every option's help says its default
        command.formatter_class = HelpFormatter
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = args.log_level or ("debug" if args.verbose else "warning" if args.quiet else "info")
    configure_logging(args.log_format, level)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"ometria-sync: configuration error: {exc}", file=sys.stderr)
        return ExitCode.FATAL
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # stdout closed (`| head`): what was asked is done; stop quietly
        silence_stdout()
        return ExitCode.OK
    return code


def entry() -> None:
    sys.exit(main())
