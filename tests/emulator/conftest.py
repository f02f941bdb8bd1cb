"""``emulator(**options)`` starts ``create_app(EmulatorOptions(...))`` in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ometria_sync.emulator.app import create_app
from ometria_sync.emulator.behaviour import EmulatorOptions
from tests.emulator.support import KEY, Emu, EmuFactory


@pytest.fixture
async def emulator() -> AsyncIterator[EmuFactory]:
    """Defaults: our key, a rate high enough not to matter, a fixed seed and no background
    import (``drain_per_second=0``: tests call ``Emu.drain`` to import, deterministically)."""
    clients: list[TestClient[web.Request, web.Application]] = []

    async def start(**options: Any) -> Emu:
        options.setdefault("api_key", KEY)
        options.setdefault("rate", 10_000.0)
        options.setdefault("seed", 1)
        options.setdefault("drain_per_second", 0.0)
        client = TestClient(TestServer(create_app(EmulatorOptions(**options)), host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return Emu(client)

    yield start
    for client in clients:
        await client.close()
