"""The emulator's HTTP API (aiohttp): Ometria's push endpoint, as strict as Ometria, plus the
read endpoints and ``/_emulator/stats``.

Order of checks for ``POST /v2/push``: the arrival jitter (a delay before anything is counted),
the rate window (every arrival counts, refused or not,
as a strict server counts them), then the key (403), then the body (400), then the import queue
(429), then the injected faults, then the answer (202) after the configured latency.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from typing import Any

import msgspec
from aiohttp import web

from ometria_sync.emulator.options import EmulatorOptions
from ometria_sync.emulator.profiles import build_profiles, order_view
from ometria_sync.emulator.store import EmulatorStore

STORE: web.AppKey[EmulatorStore] = web.AppKey("store", EmulatorStore)
OPTIONS: web.AppKey[EmulatorOptions] = web.AppKey("options", EmulatorOptions)
RANDOM: web.AppKey[random.Random] = web.AppKey("random", random.Random)
_TYPES = frozenset({"contact", "order", "product", "custom_event"})


class _Dropped(Exception):
    """The connection was closed without an answer (``--drop-rate``)."""


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=msgspec.json.encode(data), status=status, headers=headers,
                        content_type="application/json")


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


async def _latency(app: web.Application) -> None:
    low, high = app[OPTIONS].latency
    if high > 0:
        await asyncio.sleep(app[RANDOM].uniform(low, high))


def _queue_headers(app: web.Application) -> dict[str, str]:
    store = app[STORE]
    return {"X-QueueSize-Limit": str(store.capacity),
            "X-QueueSize-Remaining": str(store.remaining)}


def _too_many(app: web.Application) -> web.Response:
    headers = _queue_headers(app)
    if app[OPTIONS].retry_after:
        headers["Retry-After"] = "1"
    app[STORE].stats.by_status["429"] += 1
    return _json({"status": "ERROR", "message": "Too Many Requests"}, 429, headers)


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
        return _too_many(app)
    if request.headers.get("X-Ometria-Auth") != options.api_key:
        stats.by_status["403"] += 1
        return _json({"status": "ERROR", "message": "Forbidden"}, 403)
    problem: str | None
    try:
        body = msgspec.json.decode(body_bytes)
    except (msgspec.DecodeError, UnicodeDecodeError):
        body, problem = None, "body is not valid JSON"
    else:
        problem = _shape_error(body)
    if problem:
        stats.by_status["400"] += 1
        return _json({"status": "ERROR", "message": f"Payload invalid: {problem}"}, 400)
    if len(body) > store.remaining:
        return _too_many(app)
    await _latency(app)
    draw = app[RANDOM].random()
    if draw < options.drop_rate:
        stats.by_status["dropped"] += 1
        raise _Dropped
    if draw < options.drop_rate + options.fail_rate:
        status = app[RANDOM].choice((500, 503))
        stats.by_status[str(status)] += 1
        headers = {"Retry-After": "1"} if options.retry_after else None
        return _json({"status": "ERROR", "message": "Internal error"}, status, headers)
    request_id, accepted, rejected = store.accept(body)
    if draw < options.drop_rate + options.fail_rate + options.lost_answer_rate:
        stats.by_status["answer_lost"] += 1
        raise _Dropped
    stats.by_status["202"] += 1
    stats.answered_2xx.add(asyncio.get_running_loop().time())
    answer = {"status": "OK", "request_id": request_id, "accepted": accepted,
              "rejected": rejected}
    return _json(answer, 202, _queue_headers(app))


@web.middleware
async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """Arrival jitter for every API request; auth and rate limiting for the read endpoints;
    connection drops for ``_Dropped``."""
    low, high = request.app[OPTIONS].arrival_jitter
    if high > 0 and request.path.startswith("/v2/"):
        await asyncio.sleep(request.app[RANDOM].uniform(low, high))
    if request.path.startswith("/v2/") and request.path != "/v2/push":
        app = request.app
        now = asyncio.get_running_loop().time()
        if app[STORE].stats.arrivals.add(now) > app[OPTIONS].rate:
            return _too_many(app)
        if request.headers.get("X-Ometria-Auth") != app[OPTIONS].api_key:
            return _json({"status": "ERROR", "message": "Forbidden"}, 403)
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except _Dropped:
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError from None


def _paging(request: web.Request) -> tuple[int, int] | web.Response:
    """``limit`` (default 10, at most 250) and ``offset`` (default 0), or a 400."""
    try:
        limit = int(request.query.get("limit", "10"))
        offset = int(request.query.get("offset", "0"))
    except ValueError:
        return _json({"status": "ERROR", "message": "limit and offset must be integers"}, 400)
    if not 1 <= limit <= 250 or offset < 0:
        return _json({"status": "ERROR", "message": "limit must be 1..250, offset >= 0"}, 400)
    return limit, offset


def _page(request: web.Request, items: list[Any]) -> web.Response:
    paging = _paging(request)
    if isinstance(paging, web.Response):
        return paging
    limit, offset = paging
    return _json(items[offset:offset + limit])


async def list_orders(request: web.Request) -> web.Response:
    """Orders in the order Ometria first imported them (its internal id), 250 at most."""
    paging = _paging(request)
    if isinstance(paging, web.Response):
        return paging
    limit, offset = paging
    store = request.app[STORE]
    page = [store.get("order", key) for key in store.keys("order")[offset:offset + limit]]
    return _json([order_view(o) for o in page if o is not None])


def _one(record: dict[str, Any] | None) -> web.Response:
    if record is None:
        return _json({"status": "ERROR", "message": "Not Found"}, 404)
    return _json(record)


async def get_order(request: web.Request) -> web.Response:
    order = request.app[STORE].get("order", request.match_info["id"])
    return _one(None if order is None else order_view(order))


async def get_product(request: web.Request) -> web.Response:
    return _one(request.app[STORE].get("product", request.match_info["id"]))


async def get_contact(request: web.Request) -> web.Response:
    """``/contacts/{id}``: the first listing with that id, whatever its collection."""
    return _one(request.app[STORE].find_contact(request.match_info["id"]))


async def get_collection_contact(request: web.Request) -> web.Response:
    """``/contacts/{collection}/{id}``, as Ometria's own path names a listing."""
    key = f"{request.match_info['collection']}/{request.match_info['id']}"
    return _one(request.app[STORE].get("contact", key))


class ProfileView:
    """The profiles built from the store, rebuilt only after an import changed it."""

    def __init__(self, store: EmulatorStore) -> None:
        self._store = store
        self._version = -1
        self.profiles: list[tuple[dict[str, Any], float]] = []
        self.by_id: dict[str, dict[str, Any]] = {}
        self.by_email: dict[str, dict[str, Any]] = {}

    def refresh(self) -> ProfileView:
        store = self._store
        if store.version != self._version:
            def timed(rtype: str) -> list[tuple[dict[str, Any], float]]:
                return [(record, store.updated_at.get((rtype, key), 0.0))
                        for key, record in store.table(rtype).items()]

            self.profiles = build_profiles(timed("contact"), timed("order"))
            self.by_id = {p["id"]: p for p, _ in self.profiles}
            self.by_email = {}
            for profile, _ in self.profiles:
                for identity in profile["identities"]:
                    if identity["type"] == "email":
                        self.by_email.setdefault(identity["id"], profile)
            self._version = store.version
        return self


PROFILES: web.AppKey[ProfileView] = web.AppKey("profiles", ProfileView)


def _since(text: str) -> float | None:
    """``updateSince``: a date or a date-time (UTC when it has no offset), as a POSIX time."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


async def list_profiles(request: web.Request) -> web.Response:
    """``GET /profiles?limit&offset&updateSince``, or one profile (an object) for ``?email=``."""
    view = request.app[PROFILES].refresh()
    email = request.query.get("email")
    if email is not None:
        return _one(view.by_email.get(email.strip().lower()))
    profiles = view.profiles
    since_text = request.query.get("updateSince")
    if since_text:
        since = _since(since_text)
        if since is None:
            return _json({"status": "ERROR",
                          "message": "updateSince must be an ISO 8601 date"}, 400)
        profiles = [(p, at) for p, at in profiles if at >= since]
    return _page(request, [p for p, _ in profiles])


async def get_profile(request: web.Request) -> web.Response:
    return _one(request.app[PROFILES].refresh().by_id.get(request.match_info["id"]))


async def push_errors(request: web.Request) -> web.Response:
    await _latency(request.app)  # slow like the pushes (a test interrupts the run's fetch)
    return _json(list(reversed(request.app[STORE].errors)))


async def stats(request: web.Request) -> web.Response:
    store = request.app[STORE]
    return _json(store.stats.snapshot(len(store.queue)))


async def health(request: web.Request) -> web.Response:
    return _json({"status": "OK"})


#: records imported between two looks at the network: importing a tick's worth at once held the
#: loop for up to 20 ms at 200 requests/s, and arrivals got stamped late, then bunched
_DRAIN_SLICE = 50


async def _drain_forever(app: web.Application) -> None:
    store, per_second = app[STORE], app[OPTIONS].drain_per_second
    tick = 0.05
    credit = 0.0
    while True:
        await asyncio.sleep(tick)
        credit += per_second * tick
        whole = int(credit)
        credit -= whole
        left = min(whole, len(store.queue))
        while left > 0:
            store.drain(min(left, _DRAIN_SLICE))
            left -= _DRAIN_SLICE
            await asyncio.sleep(0)


async def _background(app: web.Application) -> Any:
    task = asyncio.create_task(_drain_forever(app))
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def create_app(options: EmulatorOptions) -> web.Application:
    """The emulator as an aiohttp application (no socket yet)."""
    app = web.Application(middlewares=[guard], client_max_size=16 * 1024 * 1024)
    app[OPTIONS] = options
    app[RANDOM] = random.Random(options.seed)
    app[STORE] = EmulatorStore(
        options.queue_capacity, import_failure_rate=options.import_failure_rate,
        silent_share=options.silent_share,
        rng=random.Random(None if options.seed is None else f"import-{options.seed}"))
    app[PROFILES] = ProfileView(app[STORE])
    if options.store:
        app[STORE].load(options.store)
    app.cleanup_ctx.append(_background)
    app.router.add_post("/v2/push", push)
    app.router.add_get("/v2/push/_errors", push_errors)
    app.router.add_get("/v2/orders", list_orders)
    app.router.add_get("/v2/orders/{id}", get_order)
    app.router.add_get("/v2/products/{id}", get_product)
    app.router.add_get("/v2/contacts/{id}", get_contact)
    app.router.add_get("/v2/contacts/{collection}/{id}", get_collection_contact)
    app.router.add_get("/v2/profiles", list_profiles)
    app.router.add_get("/v2/profiles/{id}", get_profile)
    app.router.add_get("/_emulator/stats", stats)
    app.router.add_get("/_emulator/health", health)
    return app
