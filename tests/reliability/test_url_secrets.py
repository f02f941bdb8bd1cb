"""A password in a URL's query string (review 12) is a password too: the real CLI never prints
it, in a message, ``status`` or the run report."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import CONTACTS, Workspace, contact_records, jsonl
from tests.redis_server import REDIS_URL, require_redis

pytestmark = pytest.mark.e2e
Emulator = Callable[..., Any]
CANARY = "canary-qs-7d0e5a19c3"


def _workspace(root: Path, **ometria: Any) -> Workspace:
    workspace = Workspace(root)
    jsonl(root / "data/contacts.jsonl", contact_records(20))
    workspace.job(CONTACTS, **ometria)
    return workspace


def _everything(workspace: Workspace, *outputs: str) -> str:
    """The CLI's output and every file it wrote (report, dead letter, state)."""
    files = [p.read_bytes().decode(errors="replace") for p in workspace.root.rglob("*")
             if p.is_file() and p.suffix != ".jsonl"]
    return "\n".join([*outputs, *files])


async def test_status_with_an_unreachable_state_url_hides_its_query_password(
        tmp_path: Path, emulator: Emulator) -> None:
    """``status`` on a PostgreSQL URL with ``?password=``: exit 1, the URL shown redacted."""
    workspace = _workspace(tmp_path)
    workspace.extra_env["OMETRIA_SYNC__STATE__CHECKPOINT_URL"] = (
        f"postgresql://postgres@127.0.0.1:1/x?password={CANARY}&sslpassword={CANARY}2")
    async with emulator(rate=50) as emu:
        result = await workspace.run("status", "job.toml", url=emu.url)
    assert result.code == 1, result.stderr
    assert "cannot connect" in result.stderr
    assert CANARY not in result.stdout + result.stderr
    assert "postgresql://postgres@127.0.0.1:1/x?password=***&sslpassword=***" in result.stderr


async def test_a_run_with_an_unreachable_redis_url_hides_its_query_password(
        tmp_path: Path, emulator: Emulator) -> None:
    """Redis down, its password in the query: exit 1, nothing sent, no password anywhere."""
    workspace = _workspace(tmp_path, rate_limit_url_env="TEST_REDIS_URL")
    workspace.extra_env["TEST_REDIS_URL"] = f"redis://127.0.0.1:1/5?password={CANARY}"
    async with emulator(rate=50) as emu:
        result = await workspace.run("run", "job.toml", url=emu.url)
        stats = emu.stats()
    assert result.code == 1 and stats["requests"] == 0, result.stderr
    assert "redis://127.0.0.1:1/5?password=***" in result.stderr
    assert CANARY not in _everything(workspace, result.stdout, result.stderr)


async def test_the_run_report_names_the_redis_url_without_its_query_password(
        tmp_path: Path, emulator: Emulator) -> None:
    """A run through the shared budget, its password in the query: the report's
    ``shared_budget.url`` is redacted, and no output or file holds the password."""
    require_redis()
    server = urlsplit(REDIS_URL)
    url = f"redis://{server.hostname}:{server.port}/5?password={CANARY}"
    workspace = _workspace(tmp_path, rate_limit_url_env="TEST_REDIS_URL")
    workspace.extra_env["TEST_REDIS_URL"] = url
    async with emulator(rate=50) as emu:
        result = await workspace.run("run", "job.toml", url=emu.url)
    assert result.code == 0, result.stderr
    (path,) = (workspace.root / "state" / "reports").glob("*.json")
    report = json.loads(path.read_text())
    assert report["shared_budget"]["url"] == url.replace(CANARY, "***")
    assert CANARY not in _everything(workspace, result.stdout, result.stderr)
