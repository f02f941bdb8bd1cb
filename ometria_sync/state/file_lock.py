"""One run of a job at a time: an exclusive lock next to the checkpoint store.

Two overlapping runs of the same job (a slow nightly run and the next cron start) would share
checkpoints and the account's rate budget. The second one stops at once with a clear message.
The lock is an ``flock`` on ``<checkpoint db>.<job>.lock``, one per job, so two job files that
share one database run side by side: released by the kernel when the process dies, so a
``kill -9`` never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from ometria_sync.errors import StateError
from ometria_sync.net import parse_state_url


class RunLock:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateError(
                f"another run of this job is in progress (it holds {self.path}); "
                "wait for it to finish, or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    async def may_send(self) -> None:
        """Always: the kernel holds the lock for this process until it exits, so it cannot be
        lost without the process knowing (no lease needed)."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def lock_path_for(checkpoint_url: str, job: str = "") -> Path:
    """``sqlite:///state/checkpoints.db`` and job ``nightly`` ->
    ``state/checkpoints.db.nightly.lock`` (no job: ``state/checkpoints.db.lock``)."""
    suffix = f".{job}.lock" if job else ".lock"
    where = parse_state_url(checkpoint_url)
    path = where.path if where is not None and where.kind == "sqlite" else checkpoint_url
    return Path(path + suffix)


def run_in_progress(path: str | Path) -> bool:
    """True while some process holds the lock at ``path`` (a run of the job is going on)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a shared lock taken here
    return False
