"""The one seam between the engine and Ometria: ``push(batch) -> PushResult``.

The engine depends only on :class:`Pusher`; the real HTTP client, the dry-run writer and the
tests' in-memory fakes all implement it. A pusher either returns a result (any 2xx) or raises
one of the errors in :mod:`ometria_sync.errors` saying what the caller does next.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import msgspec

#: told the event loop's time at which a request was really written to the socket
SentHook = Callable[[float], None]


class PushResult(msgspec.Struct, frozen=True):
    """Ometria's answer to one accepted request.

    ``accepted``/``rejected`` are Ometria's counts for the request (``rejected`` records are
    not named: ``GET /v2/push/_errors`` may say why). ``skipped`` is a third count seen in one
    client and documented nowhere: records so answered are *unconfirmed*, never taken as
    delivered (nor named either). ``queue_remaining``/``queue_limit`` come
    from the ``X-QueueSize-*`` headers when present. ``network_jitter`` is the kernel's
    estimate of how much the connection's round trip varies (seconds), when known.
    """

    status: int
    accepted: int
    rejected: int = 0
    skipped: int = 0
    request_id: str | None = None
    queue_remaining: int | None = None
    queue_limit: int | None = None
    network_jitter: float | None = None


class Pusher(Protocol):
    """Sends one request's worth of records of a single ``@type``."""

    async def push(
        self, body: bytes, count: int, on_sent: SentHook | None = None
    ) -> PushResult:
        """POST ``body`` (a JSON array of ``count`` records). Raises on anything but 2xx.
        ``on_sent``, if given, is called once the request has left (the pacer counts from
        there); a pusher that sends nothing need not call it."""
        ...

    async def aclose(self) -> None: ...
