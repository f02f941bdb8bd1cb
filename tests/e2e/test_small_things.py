"""What a user hits at the edges of a run: a closed stdout, a dry run's words, the Python API."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ometria_sync
from tests.e2e.conftest import CONTACTS, KEY, Workspace, contact_records, jsonl

pytestmark = pytest.mark.e2e
Emulator = Callable[..., Any]


async def test_a_closed_stdout_ends_quietly_with_the_report_written(
    workspace: Workspace, emulator: Emulator
) -> None:
    """`run | head` whose reader has gone: no traceback, the run's own exit code (3 here, for
    a refused record), and the run report is on disk."""
    jsonl(workspace.root / "data/contacts.jsonl", [*contact_records(20), "{oops"])
    workspace.job(CONTACTS)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before the first line
    async with emulator(rate=50) as emu:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ometria_sync", "run", "job.toml", "--log-format", "json",
            cwd=workspace.root, env=workspace.env(emu.url), stdout=write_end,
            stderr=asyncio.subprocess.PIPE)
        os.close(write_end)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert "Traceback" not in err.decode() and "BrokenPipe" not in err.decode(), err.decode()
    assert proc.returncode == 3
    (report,) = (workspace.root / "state" / "reports").glob("*.json")
    assert json.loads(report.read_text())["streams"][0]["sent"] == 20


async def test_a_dry_run_says_would_send_never_sent_or_accepted(
    workspace: Workspace, emulator: Emulator
) -> None:
    jsonl(workspace.root / "data/contacts.jsonl", contact_records(30))
    workspace.job(CONTACTS)
    async with emulator(rate=50) as emu:
        result = await workspace.run("run", "job.toml", "--dry-run", url=emu.url)
        stats = emu.stats()
    assert result.code == 0, result.stderr
    header = result.stdout.splitlines()[0]
    assert "would send" in header
    assert " sent" not in header.replace("would send", "") and "accepted" not in header
    row = result.stdout.splitlines()[2].split()
    assert row[0] == "contacts" and "30" in row
    assert stats["requests_by_status"] == {}


def test_run_is_the_synchronous_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ometria_sync.run(path, dry_run=True)` from plain code: a JobResult with the exit code,
    the counts and the report written, no event loop of the caller's."""
    workspace = Workspace(tmp_path)
    jsonl(tmp_path / "data/contacts.jsonl", [*contact_records(12), "{oops"])
    path = workspace.job(CONTACTS)
    monkeypatch.setenv("OMETRIA_API_KEY", KEY)
    result = ometria_sync.run(path, dry_run=True)
    assert isinstance(result, ometria_sync.JobResult)
    assert result.exit_code is ometria_sync.ExitCode.PARTIAL
    (stream,) = result.streams
    assert (stream.read, stream.sent, stream.dead_lettered) == (13, 12, 1)
    assert result.report_path is not None
    assert json.loads(Path(result.report_path).read_text())["dry_run"] is True


def test_run_works_from_a_worker_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From a thread (an Airflow task, a web app's worker) it sets no signal handler."""
    workspace = Workspace(tmp_path)
    jsonl(tmp_path / "data/contacts.jsonl", contact_records(5))
    path = workspace.job(CONTACTS)
    monkeypatch.setenv("OMETRIA_API_KEY", KEY)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        result = pool.submit(ometria_sync.run, path, dry_run=True).result(timeout=60)
    assert result.exit_code is ometria_sync.ExitCode.OK and result.streams[0].sent == 5
