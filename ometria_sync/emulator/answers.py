"""How the emulator answers: JSON bodies, 404 for a missing record, 429 with the import queue's
headers (as Ometria sends them), and the configured latency before an answer."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from aiohttp import web

from ometria_sync.emulator.keys import OPTIONS, RANDOM, STORE


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
