"""A stand-in for Omneo's API v3 on 127.0.0.1 (aiohttp), shaped like Omneo's documents.

It serves ``/api/v3/profiles`` and ``/api/v3/transactions`` through Laravel's paginator
(``page[size]``, ``page[number]``, ``sort=updated_at,id``, ``filter[updated_at]`` as an
inclusive lower bound, ``data``/``links``/``meta``; ``links`` written ``?page.number=`` like one
of Omneo's examples), ``/api/v3/profiles/{id}`` and ``/api/v3/profiles/{id}/aggregations`` (404
when a profile has none). A bearer token is required (401 otherwise). Faults are scripted per
route (``faults["aggregations"] = [429, 500]`` answers the next two aggregation requests so),
and every request is logged for tests to assert on. Knobs reproduce servers that do not behave:
``ignore_sort``, ``ignore_filter``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOKEN = "omneo-canary-7d41-never-print-me"


@dataclass
class Seen:
    route: str
    path: str
    query: dict[str, str]
    at: float


@dataclass
class OmneoData:
    """What the stand-in holds: raw Omneo objects, exactly as they are served."""

    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    aggregations: dict[str, Any] = field(default_factory=dict)
    transactions: dict[int, dict[str, Any]] = field(default_factory=dict)


@dataclass
class StandIn:
    data: OmneoData
    token: str = TOKEN
    ignore_sort: bool = False
    ignore_filter: bool = False
    retry_after: str | None = "0"
    #: seconds each answer takes (to see concurrency)
    latency: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    faults: dict[str, deque[int]] = field(default_factory=dict)
    #: answer 429 to a request arriving when this many already arrived in the last second
    rate_limit: int | None = None
    throttled: int = 0
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def fail(self, route: str, *statuses: int) -> None:
        self.faults.setdefault(route, deque()).extend(statuses)

    def busiest_second(self, since: float = -1.0) -> int:
        """The most requests (answered or not) that arrived inside any sliding second."""
        times = [s.at for s in self.seen if s.at > since]
        most, first = 0, 0
        for last, at in enumerate(times):
            while at - times[first] >= 1.0:
                first += 1
            most = max(most, last - first + 1)
        return most

    def requests(self, route: str) -> list[Seen]:
        return [s for s in self.seen if s.route == route]


STANDIN: web.AppKey[StandIn] = web.AppKey("standin", StandIn)


def _db_time(value: Any) -> dt.datetime | None:
    """How the database would see the row's updated_at (garbage reads as NULL)."""
    try:
        return dt.datetime.fromisoformat(str(value).replace("T", " ").rstrip("Z"))
    except ValueError:
        return None


def _sort_key(row: dict[str, Any]) -> tuple[dt.datetime, bool, Any]:
    """``ORDER BY updated_at, id`` with NULLs first, as MySQL sorts them."""
    ident = row.get("id")
    return (_db_time(row.get("updated_at")) or dt.datetime.min, ident is not None,
            0 if ident is None else ident)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers)


def _paginate(request: web.Request, rows: list[dict[str, Any]]) -> web.Response:
    standin: StandIn = request.app[STANDIN]
    query = request.query
    sort = query.get("sort", "")
    if sort and any(f.lstrip("-") not in ("updated_at", "id", "created_at")
                    for f in sort.split(",")):
        return _json({"message": f"Requested sort(s) `{sort}` is not allowed."}, 400)
    bound = query.get("filter[updated_at]")
    if bound and not standin.ignore_filter:
        floor = _db_time(bound)
        rows = [r for r in rows if (t := _db_time(r.get("updated_at"))) and floor and t >= floor]
    if sort and not standin.ignore_sort:
        rows = sorted(rows, key=_sort_key)
    size = int(query.get("page[size]", "15"))
    if not 1 <= size <= 100:
        return _json({"message": "The given data was invalid.",
                      "errors": {"page.size": ["must be between 1 and 100"]}}, 422)
    number = int(query.get("page[number]", "1"))
    last_page = max(1, -(-len(rows) // size))
    chunk = rows[(number - 1) * size: number * size]
    base = f"{standin.url}{request.path.removeprefix('/api/v3')}"
    return _json({
        "data": chunk,
        "links": {"first": f"{base}?page.number=1", "last": f"{base}?page.number={last_page}",
                  "prev": None if number <= 1 else f"{base}?page.number={number - 1}",
                  "next": None if number >= last_page else f"{base}?page.number={number + 1}"},
        "meta": {"current_page": number, "from": (number - 1) * size + 1 if chunk else None,
                 "last_page": last_page, "path": base, "per_page": size,
                 "to": (number - 1) * size + len(chunk) if chunk else None,
                 "total": len(rows), "links": []},
    })


async def list_profiles(request: web.Request) -> web.Response:
    return _paginate(request, list(request.app[STANDIN].data.profiles.values()))


async def list_transactions(request: web.Request) -> web.Response:
    return _paginate(request, list(request.app[STANDIN].data.transactions.values()))


async def one_profile(request: web.Request) -> web.Response:
    found = request.app[STANDIN].data.profiles.get(request.match_info["id"])
    if found is None:
        return _json({"message": "Not found"}, 404)
    return _json({"data": found})


async def one_transaction(request: web.Request) -> web.Response:
    wanted = request.match_info["id"]
    found = request.app[STANDIN].data.transactions.get(int(wanted)) if wanted.isdigit() else None
    if found is None:
        return _json({"message": "Not found"}, 404)
    return _json({"data": found})


async def aggregations(request: web.Request) -> web.Response:
    data: OmneoData = request.app[STANDIN].data
    found = data.aggregations.get(request.match_info["id"])
    if found is None:
        return _json({"message": "No query results for model [ProfileAggregation]."}, 404)
    return _json({"data": found})


@web.middleware
async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """Log, check the token, then answer a scripted fault if one is queued for the route."""
    standin: StandIn = request.app[STANDIN]
    route = request.match_info.route.name or "other"
    now = time.monotonic()
    standin.seen.append(Seen(route, request.path, dict(request.query), now))
    if request.headers.get("Authorization") != f"Bearer {standin.token}":
        return _json({"message": "Unauthenticated."}, 401)
    if standin.rate_limit is not None and standin.busiest_second(since=now - 1.0) > \
            standin.rate_limit:
        standin.throttled += 1
        return _json({"message": "Too Many Attempts."}, 429, {"Retry-After": "1"})
    queued = standin.faults.get(route)
    if queued:
        status = queued.popleft()
        headers = {"Retry-After": standin.retry_after} if status == 429 and \
            standin.retry_after is not None else None
        return _json({"message": "Too Many Attempts." if status == 429 else "Server Error"},
                     status, headers)
    standin.in_flight += 1
    standin.max_in_flight = max(standin.max_in_flight, standin.in_flight)
    try:
        if standin.latency:
            await asyncio.sleep(standin.latency)
        response: web.StreamResponse = await handler(request)
    finally:
        standin.in_flight -= 1
    return response


def create_app(standin: StandIn) -> web.Application:
    app = web.Application(middlewares=[guard])
    app[STANDIN] = standin
    app.router.add_get("/api/v3/profiles", list_profiles, name="profiles")
    app.router.add_get("/api/v3/profiles/{id}", one_profile, name="profile")
    app.router.add_get("/api/v3/profiles/{id}/aggregations", aggregations, name="aggregations")
    app.router.add_get("/api/v3/transactions", list_transactions, name="transactions")
    app.router.add_get("/api/v3/transactions/{id}", one_transaction, name="transaction")
    return app


@asynccontextmanager
async def running_standin(data: OmneoData, **options: Any) -> AsyncIterator[StandIn]:
    """Serve on a free port of 127.0.0.1 until the block ends; ``standin.url`` is the base."""
    standin = StandIn(data, **options)
    runner = web.AppRunner(create_app(standin), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server: Any = site._server
    port = server.sockets[0].getsockname()[1]
    standin.url = f"http://127.0.0.1:{port}/api/v3"
    try:
        yield standin
    finally:
        await runner.cleanup()
