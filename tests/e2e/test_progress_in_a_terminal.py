"""The progress display in a real terminal (tmux), and none of it off a terminal."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import CONTACTS, Workspace, contact_records, jsonl

pytestmark = pytest.mark.e2e
Emulator = Callable[..., Any]


def _tmux() -> str:
    path = shutil.which("tmux")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("tmux is needed for the terminal test (apt-get install tmux)")
        pytest.skip("tmux is not installed")
    return path


async def test_bars_on_a_terminal(workspace: Workspace, emulator: Emulator) -> None:
    tmux = _tmux()
    jsonl(workspace.root / "data/contacts.jsonl", contact_records(2000))
    workspace.job(CONTACTS, rate_limit_per_second=4)
    session = f"osync-{uuid.uuid4().hex[:8]}"
    async with emulator(rate=4) as emu:
        env = workspace.env(emu.url)
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()
                           if k.startswith(("OMETRIA", "PATH", "HOME")))
        command = (f"cd {shlex.quote(str(workspace.root))} && env {exports} TERM=xterm-256color "
                   f"{shlex.quote(sys.executable)} -m ometria_sync run job.toml --log-level warning"
                   "; sleep 30")
        subprocess.run([tmux, "new-session", "-d", "-s", session, "-x", "160", "-y", "30",
                        command], check=True)
        try:
            screen = ""
            for _ in range(60):
                await asyncio.sleep(0.25)
                screen = subprocess.run([tmux, "capture-pane", "-p", "-t", session],
                                        capture_output=True, text=True).stdout
                if "req/s" in screen and emu.stats()["records_accepted"] >= 400:
                    break
        finally:
            subprocess.run([tmux, "kill-session", "-t", session], check=False)
    assert "contacts" in screen
    assert "/4 req/s" in screen
    assert "read" in screen and "sent" in screen


async def test_no_bars_off_a_terminal(workspace: Workspace, emulator: Emulator) -> None:
    jsonl(workspace.root / "data/contacts.jsonl", contact_records(300))
    workspace.job(CONTACTS)
    async with emulator(rate=50) as emu:
        result = await workspace.run("run", "job.toml", url=emu.url)
    assert result.code == 0
    assert "req/s" not in result.stderr and "\x1b[" not in result.stderr
