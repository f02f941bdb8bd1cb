"""The emulator as an aiohttp application: its routes, its state, and the import queue's drain.

The push endpoint is ``push.py`` (as strict as Ometria), the read endpoints ``reads.py``; every
request passes ``gate.py`` first.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from aiohttp import web

from ometria_sync.emulator.behaviour import (
    OPTIONS,
    PROFILES,
    RANDOM,
    STORE,
    EmulatorOptions,
    guard,
    json_answer,
)
from ometria_sync.emulator.profiles import ProfileView
from ometria_sync.emulator.push import push, push_errors
from ometria_sync.emulator.reads import (
    get_collection_contact,
    get_contact,
    get_order,
    get_product,
    get_profile,
    list_orders,
    list_profiles,
)
from ometria_sync.emulator.store import EmulatorStore


async def stats(request: web.Request) -> web.Response:
    store = request.app[STORE]
    return json_answer(store.stats.snapshot(len(store.queue)))


async def health(request: web.Request) -> web.Response:
    return json_answer({"status": "OK"})


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
    app[STORE].failing_ids.update(options.fail_batches_with)
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
