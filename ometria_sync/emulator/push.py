"""Ometria's push endpoint, as strict as Ometria, and its error listing.

Order of checks for ``POST /v2/push``: the arrival jitter (a delay before anything is counted,
in :func:`~ometria_sync.emulator.behaviour.guard`), the rate window (every arrival counts,
refused or not, as a strict server counts them), then the key (403), then the body (400), then
the import queue (429), then the injected faults, then the answer (202) after the configured
latency.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from aiohttp import web

from ometria_sync.emulator.behaviour import (
    OPTIONS,
    RANDOM,
    STORE,
    Dropped,
    json_answer,
    latency,
    queue_headers,
    too_many,
)

_TYPES = frozenset({"contact", "order", "product", "custom_event"})


def _shape_error(body: Any) -> str | None:
    """Why a push body is not 1..100 objects of one type each with @type and id, or None."""
    if not isinstance(body, list):
        return "body must be a JSON array"
    if not 1 <= len(body) <= 100:
        return f"body must hold 1 to 100 records, got {len(body)}"
    types = set()
    for index, record in enumerate(body):
        if not isinstance(record, dict):
            return f"record {index} is not an object"
        rtype = record.get("@type")
        if not isinstance(rtype, str) or rtype not in _TYPES:  # a list or object is unhashable
            return f"record {index}: @type missing or unknown"
        if "id" not in record:
            return f"record {index}: id missing"
        types.add(record["@type"])
    if len(types) > 1:
        return "records of different types in one request; never mix object types"
    return None


async def push(request: web.Request) -> web.StreamResponse:
    app = request.app
    store, options = app[STORE], app[OPTIONS]
    now = asyncio.get_running_loop().time()
    stats = store.stats
    stats.first_push = now if stats.first_push is None else stats.first_push
    stats.last_push = now
    over_rate = stats.arrivals.add(now) > options.rate
    body_bytes = await request.read()
    if over_rate:
        return too_many(app)
    if request.headers.get("X-Ometria-Auth") != options.api_key:
        stats.by_status["403"] += 1
        return json_answer({"status": "ERROR", "message": "Forbidden"}, 403)
    problem: str | None
    try:
        body = msgspec.json.decode(body_bytes)
    except (msgspec.DecodeError, UnicodeDecodeError):
        body, problem = None, "body is not valid JSON"
    else:
        problem = _shape_error(body)
    if problem:
        stats.by_status["400"] += 1
        return json_answer({"status": "ERROR", "message": f"Payload invalid: {problem}"}, 400)
    if len(body) > store.remaining:
        return too_many(app)
    await latency(app)
    if store.failing_ids and any(str(r["id"]) in store.failing_ids for r in body):
        stats.by_status["503"] += 1
        return json_answer({"status": "ERROR", "message": "Service Unavailable"}, 503)
    draw = app[RANDOM].random()
    if draw < options.drop_rate:
        stats.by_status["dropped"] += 1
        raise Dropped
    if draw < options.drop_rate + options.fail_rate:
        status = app[RANDOM].choice((500, 503))
        stats.by_status[str(status)] += 1
        headers = {"Retry-After": "1"} if options.retry_after else None
        return json_answer({"status": "ERROR", "message": "Internal error"}, status, headers)
    request_id, accepted, rejected = store.accept(body)
    if draw < options.drop_rate + options.fail_rate + options.lost_answer_rate:
        stats.by_status["answer_lost"] += 1
        raise Dropped
    stats.by_status["202"] += 1
    stats.answered_2xx.add(asyncio.get_running_loop().time())
    answer = {"status": "OK", "request_id": request_id, "accepted": accepted,
              "rejected": rejected}
    return json_answer(answer, 202, queue_headers(app))


async def push_errors(request: web.Request) -> web.Response:
    await latency(request.app)  # slow like the pushes (a test interrupts the run's fetch)
    return json_answer(list(reversed(request.app[STORE].errors)))
