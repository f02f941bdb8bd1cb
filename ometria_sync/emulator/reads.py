"""The read endpoints: what Ometria *imported* (not what it merely accepted), in the seed
documents' shapes (``profiles.py``). Paged listings take ``limit`` (1..250) and ``offset``."""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from ometria_sync.emulator.behaviour import PROFILES, STORE, json_answer, one_or_404
from ometria_sync.emulator.profiles import order_view


def _paging(request: web.Request) -> tuple[int, int] | web.Response:
    """``limit`` (default 10, at most 250) and ``offset`` (default 0), or a 400."""
    try:
        limit = int(request.query.get("limit", "10"))
        offset = int(request.query.get("offset", "0"))
    except ValueError:
        return json_answer({"status": "ERROR", "message": "limit and offset must be integers"}, 400)
    if not 1 <= limit <= 250 or offset < 0:
        return json_answer({"status": "ERROR", "message": "limit must be 1..250, offset >= 0"}, 400)
    return limit, offset


async def list_orders(request: web.Request) -> web.Response:
    """Orders in the order Ometria first imported them (its internal id), 250 at most."""
    paging = _paging(request)
    if isinstance(paging, web.Response):
        return paging
    limit, offset = paging
    store = request.app[STORE]
    page = [store.get("order", key) for key in store.key_page("order", offset, limit)]
    return json_answer([order_view(o) for o in page if o is not None])


async def get_order(request: web.Request) -> web.Response:
    order = request.app[STORE].get("order", request.match_info["id"])
    return one_or_404(None if order is None else order_view(order))


async def get_product(request: web.Request) -> web.Response:
    return one_or_404(request.app[STORE].get("product", request.match_info["id"]))


async def get_contact(request: web.Request) -> web.Response:
    """``/contacts/{id}``: the first listing with that id, whatever its collection."""
    return one_or_404(request.app[STORE].find_contact(request.match_info["id"]))


async def get_collection_contact(request: web.Request) -> web.Response:
    """``/contacts/{collection}/{id}``, as Ometria's own path names a listing."""
    key = f"{request.match_info['collection']}/{request.match_info['id']}"
    return one_or_404(request.app[STORE].get("contact", key))


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
        return one_or_404(view.by_email(email.strip().lower()))
    since = None
    since_text = request.query.get("updateSince")
    if since_text:
        since = _since(since_text)
        if since is None:
            return json_answer({"status": "ERROR",
                                "message": "updateSince must be an ISO 8601 date"}, 400)
    paging = _paging(request)
    if isinstance(paging, web.Response):
        return paging
    limit, offset = paging
    return json_answer(view.page(offset, limit, since))


async def get_profile(request: web.Request) -> web.Response:
    return one_or_404(request.app[PROFILES].refresh().by_id(request.match_info["id"]))
