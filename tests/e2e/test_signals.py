"""SIGTERM outside the streams' window: during the preflight and during the final error-list
fetch the real CLI still stops cleanly, prints its summary, writes its report, exits 130 and
leaves the checkpoint as it was."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ometria_sync.emulator.behaviour import STORE
from tests.e2e.conftest import CONTACTS, Workspace, contact_records, jsonl
from tests.sources.omneo.standin import TOKEN, OmneoData, running_standin

pytestmark = pytest.mark.e2e
Emulator = Callable[..., Any]

OMNEO = """
[[streams]]
name = "omneo-contacts"
record_type = "contact"
[streams.source]
kind = "omneo_profiles"
base_url = "{url}"
rate_limit_per_second = 50
"""


def checkpoints(root: Path) -> list[tuple[str, str]]:
    db = sqlite3.connect(root / "state" / "checkpoints.db")
    try:
        return db.execute("SELECT stream, position FROM checkpoints ORDER BY stream").fetchall()
    finally:
        db.close()


async def signal_on_event(proc: asyncio.subprocess.Process, event: str) -> str:
    """Read the JSON log lines until ``event``, then SIGTERM; the rest of stderr."""
    assert proc.stderr is not None
    seen = []
    while True:
        line = await asyncio.wait_for(proc.stderr.readline(), 30)
        assert line, f"the run ended before {event!r}: {b''.join(seen).decode()}"
        seen.append(line)
        if json.loads(line).get("event") == event:
            break
    proc.send_signal(signal.SIGTERM)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return out.decode() + "\n" + b"".join(seen).decode() + err.decode()


def reports(root: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((root / "state/reports").glob("*.json"),
                                                         key=lambda p: p.stat().st_mtime_ns)]


async def test_sigterm_during_the_preflight_sends_nothing_and_writes_the_report(
        workspace: Workspace, emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNEO_TOKEN", TOKEN)
    jsonl(workspace.root / "data/contacts.jsonl", contact_records(50))
    async with running_standin(OmneoData()) as standin, emulator(rate=50) as emu:
        workspace.job(CONTACTS + OMNEO.format(url=standin.url))
        first = await workspace.run("run", "job.toml", url=emu.url)
        assert first.code == 0, first.stderr
        before = checkpoints(workspace.root)
        requests = emu.stats()["requests"]
        jsonl(workspace.root / "data/contacts.jsonl", contact_records(80))  # 30 more to send
        standin.latency = 5.0  # the Omneo preflight hangs
        proc = await workspace.start("run", "job.toml", url=emu.url)
        output = await signal_on_event(proc, "preflight")
        assert emu.stats()["requests"] == requests  # nothing sent
    assert proc.returncode == 130, output
    assert "interrupted" in output.split("report:")[0]  # the summary says so
    assert "report: " in output
    last = reports(workspace.root)[-1]
    assert last["exit_code"] == 130
    assert [s["outcome"] for s in last["streams"]] == ["interrupted", "interrupted"]
    assert checkpoints(workspace.root) == before


async def test_sigterm_during_the_error_fetch_cuts_it_short_and_writes_the_report(
        workspace: Workspace, emulator: Emulator) -> None:
    jsonl(workspace.root / "data/contacts.jsonl", contact_records(20))
    workspace.job(CONTACTS)
    async with emulator(rate=50, latency=(3.0, 3.0)) as emu:
        store = emu.app[STORE]
        accept = store.accept

        def refuse_one(records: list[dict[str, Any]]) -> tuple[str, int, int]:
            request_id, accepted, rejected = accept(records)
            return request_id, accepted - 1, rejected + 1  # Ometria refused one record

        store.accept = refuse_one
        proc = await workspace.start("run", "job.toml", url=emu.url)
        loop = asyncio.get_running_loop()
        output = await signal_on_event(proc, "fetching_push_errors")
        started = loop.time()
        await proc.wait()
        took = loop.time() - started
    assert proc.returncode == 130, output
    assert took < 2.5  # the 3-second answer was not waited for
    assert "contacts" in output and "report: " in output
    last = reports(workspace.root)[-1]
    assert last["exit_code"] == 130 and last["streams"][0]["rejected"] == 1
    assert last["ometria_errors"] == []
    assert checkpoints(workspace.root)[0][0] == "contacts"
    assert json.loads(checkpoints(workspace.root)[0][1])[1] == 20  # every line acknowledged
