"""The process exit codes users and schedulers rely on."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    """Every record delivered."""
    FATAL = 1
    """Bad configuration, key refused, server unreachable after retries, unreadable source."""
    USAGE = 2
    """Bad command line (argparse's own code)."""
    PARTIAL = 3
    """Finished, but some records were not delivered: dead-lettered, rejected by Ometria, or
    unconfirmed (answered ``skipped``)."""
    INTERRUPTED = 130
    """SIGINT or SIGTERM, after in-flight batches settled and the checkpoint was saved."""
