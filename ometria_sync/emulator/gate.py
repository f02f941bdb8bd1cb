"""What every request passes before its handler: the arrival jitter for the API's paths, and
for the read endpoints the rate window and the key (the push handler counts its own arrivals, in
its own order of checks); and the connection drop a handler asks for by raising :class:`Dropped`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from ometria_sync.emulator.answers import json_answer, too_many
from ometria_sync.emulator.keys import OPTIONS, RANDOM, STORE


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
