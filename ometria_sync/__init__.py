"""ometria-sync: bulk sync of a retailer's customer data into Ometria.

The public API is small: load a job file, run it (``run``, synchronous, as the command does;
or the coroutine ``run_job``), and the errors you may need to catch.
Everything else is an implementation detail and may change.
"""

from ometria_sync._version import __version__
from ometria_sync.cli import run
from ometria_sync.config import Job, JobSettings, load_job
from ometria_sync.errors import (
    AuthenticationError,
    BatchRejectedError,
    ConfigError,
    ExitCode,
    FatalApiError,
    OmetriaSyncError,
    RetriesExhaustedError,
    RetryableError,
    SourceError,
    StateError,
    ThrottledError,
    TransientError,
)
from ometria_sync.ometria import Pusher, PushResult
from ometria_sync.pipeline import JobResult, RunOptions, StreamStats, run_job

__all__ = [
    "AuthenticationError",
    "BatchRejectedError",
    "ConfigError",
    "ExitCode",
    "FatalApiError",
    "Job",
    "JobResult",
    "JobSettings",
    "OmetriaSyncError",
    "PushResult",
    "Pusher",
    "RetriesExhaustedError",
    "RetryableError",
    "RunOptions",
    "SourceError",
    "StateError",
    "StreamStats",
    "ThrottledError",
    "TransientError",
    "__version__",
    "load_job",
    "run",
    "run_job",
]
