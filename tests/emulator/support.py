"""Helpers for the emulator's in-process tests: a client around ``create_app`` and records."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from ometria_sync.emulator.behaviour import STORE
from ometria_sync.emulator.store import EmulatorStore

KEY = "test-key"
AUTH = {"X-Ometria-Auth": KEY}


class Emu:
    """An emulator app served on 127.0.0.1 (a free port), with a client that knows the key."""

    def __init__(self, client: TestClient[web.Request, web.Application]) -> None:
        self.client = client

    @property
    def store(self) -> EmulatorStore:
        app = self.client.app
        assert app is not None
        return app[STORE]

    async def push(self, body: Any, *, key: str | None = KEY) -> ClientResponse:
        """POST ``body`` (JSON-encoded unless it is bytes) to /v2/push."""
        data = body if isinstance(body, bytes) else msgspec.json.encode(body)
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["X-Ometria-Auth"] = key
        response = await self.client.post("/v2/push", data=data, headers=headers)
        await response.read()
        return response

    async def get(self, path: str, *, key: str | None = KEY, **params: Any) -> ClientResponse:
        headers = {} if key is None else {"X-Ometria-Auth": key}
        response = await self.client.get(path, headers=headers,
                                         params={k: str(v) for k, v in params.items()})
        await response.read()
        return response

    async def json(self, path: str, **params: Any) -> Any:
        response = await self.get(path, **params)
        assert response.status == 200, (response.status, await response.text())
        return await response.json()

    async def stats(self) -> dict[str, Any]:
        response = await self.client.get("/_emulator/stats")
        assert response.status == 200
        stats: dict[str, Any] = await response.json()
        return stats

    def drain(self) -> None:
        """Import everything queued now (the tests run with the drain task idle)."""
        self.store.drain(len(self.store.queue))


def contact(cid: str, collection: str = "shop", **fields: Any) -> dict[str, Any]:
    return {"@type": "contact", "@collection": collection, "id": cid, **fields}


def order(oid: str, **fields: Any) -> dict[str, Any]:
    record = {"@type": "order", "id": oid, "timestamp": "2024-03-01T10:15:00+00:00",
              "grand_total": 10.0, "currency": "GBP", "status": "complete"}
    record.update(fields)
    return record


def product(pid: str, **fields: Any) -> dict[str, Any]:
    return {"@type": "product", "id": pid, "title": f"Product {pid}", "price": 9.5, **fields}


#: the ``emulator`` fixture: ``await emulator(rate=4.0, ...)`` starts one and returns an Emu
EmuFactory = Callable[..., Awaitable[Emu]]
