"""The dry-run pusher: everything but the send. Payloads go to files instead of Ometria."""

from __future__ import annotations

import os
from pathlib import Path

from ometria_sync.ometria.push import PushResult, SentHook


class DryRunPusher:
    """Writes each request body to ``<folder>/<stream>/000001.json``, ... and reports success.

    The files hold exactly the bytes that would have been POSTed, for inspection or replay.
    """

    def __init__(self, folder: str | Path, stream: str) -> None:
        self.folder = Path(folder) / stream
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._count = len(list(self.folder.glob("*.json")))

    async def push(
        self, body: bytes, count: int, on_sent: SentHook | None = None
    ) -> PushResult:
        self._count += 1
        path = self.folder / f"{self._count:06d}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # personal data
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
        return PushResult(status=200, accepted=count)

    async def aclose(self) -> None:
        return None


class NullPusher:
    """Accepts everything and keeps nothing: for ``validate``, which sends nothing."""

    async def push(
        self, body: bytes, count: int, on_sent: SentHook | None = None
    ) -> PushResult:
        return PushResult(status=200, accepted=count)

    async def aclose(self) -> None:
        return None
