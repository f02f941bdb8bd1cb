"""Health at the end of each run and the webhook, through the real CLI, told by a local HTTP
receiver: one message per unhealthy run, none for a healthy one; a receiver that fails or is
not there never changes the run's exit code; the webhook's secret path is never shown."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from tests.e2e.conftest import CONTACTS, Workspace, contact_records, jsonl

pytestmark = pytest.mark.e2e
Emulator = Callable[..., Any]
SECRET = "T00000000/B00000000/canary-hook-secret-5d2c"
ALERTS = """
[alerts]
max_refused = 0
webhook_url_env = "SYNC_WEBHOOK"
"""


@asynccontextmanager
async def receiver(status: int = 200) -> AsyncIterator[tuple[str, list[Any]]]:
    """A webhook receiver on a free loopback port: (its URL with the secret path, messages)."""
    got: list[Any] = []

    async def hook(request: web.Request) -> web.Response:
        got.append(await request.json())
        return web.Response(status=status, text="ok")

    app = web.Application()
    app.router.add_post(f"/services/{SECRET}", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/services/{SECRET}", got
    finally:
        await runner.cleanup()


def _data(workspace: Workspace, bad: int) -> None:
    records: list[Any] = contact_records(50)
    for i in range(bad):
        records[i]["email"] = "nobody"
    jsonl(workspace.root / "data/contacts.jsonl", records)


async def test_the_webhook_hears_of_each_unhealthy_run_once(
    workspace: Workspace, emulator: Emulator
) -> None:
    workspace.job(ALERTS + CONTACTS)
    async with emulator(rate=50) as emu, receiver() as (url, got):
        workspace.extra_env = {"SYNC_WEBHOOK": url}
        _data(workspace, bad=0)
        clean = await workspace.run("run", "job.toml", url=emu.url)
        assert clean.code == 0, clean.stderr
        assert got == []
        healthy = await workspace.run("health", "job.toml", url=emu.url)
        assert (healthy.code, healthy.stdout.strip()) == (0, "healthy")

        _data(workspace, bad=5)
        refused = await workspace.run("run", "job.toml", "--full-refresh", url=emu.url)
        assert refused.code == 3
        (message,) = got
        assert set(message) == {"text"}
        assert "unhealthy" in message["text"] and "refused 5 records" in message["text"]
        assert "max_refused is 0" in message["text"]

        health = await workspace.run("health", "job.toml", url=emu.url)
        assert health.code == 1 and "refused 5 records" in health.stdout
        verdict = json.loads((await workspace.run("health", "job.toml", "--json",
                                                  url=emu.url)).stdout)
        assert verdict["healthy"] is False and verdict["last_run"]["refused"] == 5
        assert len(got) == 1  # health without --notify tells nobody
        await workspace.run("health", "job.toml", "--notify", url=emu.url)
        assert len(got) == 2

        _data(workspace, bad=0)
        again = await workspace.run("run", "job.toml", "--full-refresh", url=emu.url)
        assert again.code == 0 and len(got) == 2
        assert (await workspace.run("health", "job.toml", url=emu.url)).code == 0
    for result in (clean, refused, health, again):
        assert "canary-hook-secret" not in result.stdout + result.stderr


@pytest.mark.parametrize("receiver_state", ["answers 500", "not listening"])
async def test_a_failing_webhook_never_fails_the_run_nor_shows_its_secret(
    workspace: Workspace, emulator: Emulator, receiver_state: str
) -> None:
    workspace.job(ALERTS + CONTACTS)
    _data(workspace, bad=2)
    async with emulator(rate=50) as emu, receiver(status=500) as (url, got):
        if receiver_state == "not listening":
            url = f"http://127.0.0.1:9/services/{SECRET}"
        workspace.extra_env = {"SYNC_WEBHOOK": url}
        result = await workspace.run("run", "job.toml", url=emu.url)
    assert result.code == 3  # the run's own code: two records refused
    assert "Traceback" not in result.stderr
    logged = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    (failure,) = [e for e in logged if e.get("event") == "webhook_not_told"]
    assert failure["webhook"].startswith("http://127.0.0.1:")
    assert "canary-hook-secret" not in result.stdout + result.stderr
    assert len(got) == (1 if receiver_state == "answers 500" else 0)


async def test_a_failed_run_tells_the_webhook(workspace: Workspace, emulator: Emulator) -> None:
    """Ometria refuses the key: exit 1, one message saying the run failed (no rule needed)."""
    workspace.job("[alerts]\nwebhook_url_env = \"SYNC_WEBHOOK\"\n" + CONTACTS)
    _data(workspace, bad=0)
    async with emulator(rate=50) as emu, receiver() as (url, got):
        workspace.extra_env = {"SYNC_WEBHOOK": url}
        result = await workspace.run("run", "job.toml", url=emu.url, key="not-the-key")
    assert result.code == 1
    (message,) = got
    assert "the last run failed (exit 1)" in message["text"]
    assert "refused the API key" in message["text"]


async def test_a_run_that_cannot_start_tells_the_webhook(
    workspace: Workspace, emulator: Emulator
) -> None:
    """The state store is out of reach: no report can be written, so the run itself says why
    on the webhook (set from the environment, as a container would) and exits 1."""
    workspace.job(CONTACTS)
    _data(workspace, bad=0)
    async with emulator(rate=50) as emu, receiver() as (url, got):
        workspace.extra_env = {
            "SYNC_WEBHOOK": url,
            "OMETRIA_SYNC__ALERTS__WEBHOOK_URL_ENV": "SYNC_WEBHOOK",
            "OMETRIA_SYNC__STATE__CHECKPOINT_URL": "postgresql://nobody@127.0.0.1:9/state",
        }
        result = await workspace.run("run", "job.toml", url=emu.url)
        assert emu.stats()["requests"] == 0  # nothing was sent
    assert result.code == 1, result.stderr
    (message,) = got
    assert "could not start" in message["text"]
    assert "127.0.0.1:9" in message["text"]
    assert "canary-hook-secret" not in result.stdout + result.stderr
