"""Exceptions, named for what the caller does next, and the exit codes a run ends with.

::

    OmetriaSyncError
     ├── ConfigError          fix the job file or the environment; nothing was sent
     ├── StateError           the checkpoint store or dead letter cannot be used; stop, nothing lost
     ├── MassDeletionRefused  on_missing would deactivate too much; fix the export or
     │                        run once with --allow-mass-delete
     ├── SourceError          this stream's source cannot be read; other streams go on
     ├── FatalApiError        Ometria refused the run as a whole; stop at once
     │    ├── AuthenticationError   the API key was refused (401/403)
     │    └── UnconfirmedAnswerError a 2xx that is not Ometria's acknowledgement (a proxy?)
     ├── RetryableError       try the same request again later (carries status and retry_after)
     │    ├── ThrottledError        429: rate limit or import queue; pause every dispatcher
     │    └── TransientError        408, 5xx, timeout, connection reset
     ├── BatchRejectedError   400/413/422: the batch is bad; split it to find the bad records
     ├── RetriesExhaustedError a batch kept failing; the run stops with its checkpoint intact
     └── RateBudgetError      the shared rate budget (Redis) cannot be used; send nothing more

No message ever contains the API key: the client never puts request headers into an exception.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """The process exit codes users and schedulers rely on."""

    OK = 0
    """Every record delivered."""
    FATAL = 1
    """Bad configuration, key refused, server unreachable after retries, unreadable source."""
    USAGE = 2
    """Bad command line (argparse's own code)."""
    PARTIAL = 3
    """Finished, and this run found something new to look at: a refusal the ledger did not
    know (a new id, or new content), records rejected by Ometria, unconfirmed (answered
    ``skipped``), or parked after their last attempt. Refusals of the same content an earlier
    run refused are summarised, not counted, unless ``[run] exit_on = "any_refusal"``."""
    NOTHING_VERIFIED = 4
    """``verify``: nothing in the selection could be verified (custom events only, which have
    no read endpoint; an empty selection, such as a last run that covered no record)."""
    INTERRUPTED = 130
    """SIGINT or SIGTERM, after in-flight batches settled and the checkpoint was saved."""


class OmetriaSyncError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(OmetriaSyncError):
    """The job file or environment is wrong. The message names the key, e.g.
    ``streams[1].source.path: no such file``."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}" if key else problem)


class StateError(OmetriaSyncError):
    """The checkpoint store or the dead letter cannot be read or written."""


class MassDeletionRefused(OmetriaSyncError):
    """A stream with ``on_missing = "deactivate"`` would deactivate too much (an empty source,
    or more than ``max_missing_fraction`` of the ids it delivered): nothing was deactivated and
    the run exits 1. Fix the export, or run once with ``--allow-mass-delete``."""


class SourceError(OmetriaSyncError):
    """A stream's source cannot be read at all (missing file, broken gzip, bad query)."""


class FatalApiError(OmetriaSyncError):
    """Ometria answered in a way no retry can fix (unknown endpoint, bad key)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class AuthenticationError(FatalApiError):
    """The API key was refused. The key itself never appears in the message."""


class UnconfirmedAnswerError(FatalApiError):
    """A 2xx whose body is not Ometria's acknowledgement (not JSON, ``status`` not OK, or counts
    that do not add up to the records sent): something else answered, so the batch is not
    settled and the run stops. The message names the status and a snippet of the body."""


class RetryableError(OmetriaSyncError):
    """The same request may succeed later. ``retry_after`` is the server's hint in seconds
    (already parsed and capped), or None when it gave none."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(message)


class ThrottledError(RetryableError):
    """HTTP 429: too many requests in a second, or Ometria's import queue is full."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        queue_remaining: int | None = None,
    ) -> None:
        self.queue_remaining = queue_remaining
        super().__init__(message, status=429, retry_after=retry_after)


class TransientError(RetryableError):
    """408, 5xx, a timeout or a dropped connection: retry with backoff, up to a limit."""


class BatchRejectedError(OmetriaSyncError):
    """400/413/422: the payload itself is refused. Split the batch to isolate the bad records."""

    def __init__(self, message: str, *, status: int, detail: str = "") -> None:
        self.status = status
        self.detail = detail
        super().__init__(message)


class RetriesExhaustedError(OmetriaSyncError):
    """A batch still failed after the configured retries; the run stops (exit 1)."""


class RateBudgetError(OmetriaSyncError):
    """The rate budget shared through Redis (``ometria.rate_limit_url``) cannot be reached:
    before the run nothing was sent; during it, sending stopped (never a private budget, which
    would over-send) and the run stops with its checkpoints intact (exit 1). The message never
    contains the URL's password."""
