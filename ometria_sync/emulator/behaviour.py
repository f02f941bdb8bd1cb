"""How the local Ometria behaves: its settings, and what every handler shares to apply them.

``EmulatorOptions`` are the emulator's settings, shared by the CLI and tests. The handlers find
them, the store, the random source and the profile view on the aiohttp application, each under
its typed key (``OPTIONS``, ``STORE``, ``RANDOM``, ``PROFILES``).

How the emulator answers: JSON bodies, 404 for a missing record, 429 with the import queue's
headers (as Ometria sends them), and the configured latency before an answer.

What every request passes before its handler (:func:`guard`): the arrival jitter for the API's
paths, and for the read endpoints the rate window and the key (the push handler counts its own
arrivals, in its own order of checks); and the connection drop a handler asks for by raising
:class:`Dropped`.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import msgspec
from aiohttp import web

from ometria_sync.emulator.profiles import ProfileView
from ometria_sync.emulator.store import EmulatorStore

DEV_KEY = "emulator-key"


class EmulatorOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How the local Ometria behaves. Rates are fractions in [0, 1]; latency is (min, max) s."""

    host: str = "127.0.0.1"
    port: int = 0
    api_key: str = DEV_KEY
    rate: float = 4.0
    latency: tuple[float, float] = (0.0, 0.0)
    #: delay (min, max) s before an arrival is stamped and counted, as a network's varying
    #: one-way delay shifts arrivals relative to departures
    arrival_jitter: tuple[float, float] = (0.0, 0.0)
    fail_rate: float = 0.0
    drop_rate: float = 0.0
    #: fraction of valid pushes whose records are accepted but whose answer is lost (the
    #: connection closes): the client cannot know the outcome, and retries
    lost_answer_rate: float = 0.0
    #: fraction of accepted records that then fail at import (Ometria's 2xx means "queued")
    import_failure_rate: float = 0.0
    #: of those, the fraction that fail without any trace (not listed in ``/push/_errors``)
    silent_share: float = 0.5
    #: ids whose pushes are answered 503 every time (a batch whose retries run out); the
    #: store's ``failing_ids``, which a test may change while the emulator runs
    fail_batches_with: tuple[str, ...] = ()
    queue_capacity: int = 50_000
    drain_per_second: float = 10_000.0
    #: send Retry-After (1 s) on 429s and 5xx (Ometria does not document one; the engine must
    #: cope without)
    retry_after: bool = False
    store: str | None = None
    seed: int | None = None


STORE: web.AppKey[EmulatorStore] = web.AppKey("store", EmulatorStore)
OPTIONS: web.AppKey[EmulatorOptions] = web.AppKey("options", EmulatorOptions)
RANDOM: web.AppKey[random.Random] = web.AppKey("random", random.Random)
PROFILES: web.AppKey[ProfileView] = web.AppKey("profiles", ProfileView)


def json_answer(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(body=msgspec.json.encode(data), status=status, headers=headers,
                        content_type="application/json")


def one_or_404(record: dict[str, Any] | None) -> web.Response:
    if record is None:
        return json_answer({"status": "ERROR", "message": "Not Found"}, 404)
    return json_answer(record)


async def latency(app: web.Application) -> None:
    low, high = app[OPTIONS].latency
    if high > 0:
        await asyncio.sleep(app[RANDOM].uniform(low, high))


def queue_headers(app: web.Application) -> dict[str, str]:
    store = app[STORE]
    return {"X-QueueSize-Limit": str(store.capacity),
            "X-QueueSize-Remaining": str(store.remaining)}


def too_many(app: web.Application) -> web.Response:
    headers = queue_headers(app)
    if app[OPTIONS].retry_after:
        headers["Retry-After"] = "1"
    app[STORE].stats.by_status["429"] += 1
    return json_answer({"status": "ERROR", "message": "Too Many Requests"}, 429, headers)


class Dropped(Exception):
    """The connection was closed without an answer (``--drop-rate``)."""


@web.middleware
async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """Arrival jitter for every API request; auth and rate limiting for the read endpoints;
    connection drops for ``Dropped``."""
    low, high = request.app[OPTIONS].arrival_jitter
    if high > 0 and request.path.startswith("/v2/"):
        await asyncio.sleep(request.app[RANDOM].uniform(low, high))
    if request.path.startswith("/v2/") and request.path != "/v2/push":
        app = request.app
        now = asyncio.get_running_loop().time()
        if app[STORE].stats.arrivals.add(now) > app[OPTIONS].rate:
            return too_many(app)
        if request.headers.get("X-Ometria-Auth") != app[OPTIONS].api_key:
            return json_answer({"status": "ERROR", "message": "Forbidden"}, 403)
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except Dropped:
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError from None
