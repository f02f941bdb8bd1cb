"""The state remembers which Ometria account it describes: a run with another key against
the same state is refused (exit 1, nothing sent) instead of skipping every record as
unchanged; validate and dry runs are not affected; reset starts over."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import CONTACTS, KEY, Workspace, contact_records, jsonl

pytestmark = pytest.mark.e2e
Emulator = Callable[..., Any]
LIVE = "live-key-0d9e8c7b6a-never-print-me"


async def test_another_account_against_the_same_state_is_refused(
        workspace: Workspace, emulator: Emulator) -> None:
    jsonl(workspace.root / "data/contacts.jsonl", contact_records(150))
    workspace.job(CONTACTS)
    async with emulator(rate=50) as staging:
        first = await workspace.run("run", "job.toml", url=staging.url)
    assert first.code == 0, first.stderr
    async with emulator(rate=50, api_key=LIVE) as live:
        url = live.url
        refused = await workspace.run("run", "job.toml", url=url, key=LIVE)
        dry = await workspace.run("run", "job.toml", "--dry-run", url=url, key=LIVE)
        valid = await workspace.run("validate", "job.toml", url=url, key=LIVE)
        sent_before_reset = live.stats()["requests"]
        reset = await workspace.run("reset", "job.toml", "--yes", url=url, key=LIVE)
        again = await workspace.run("run", "job.toml", url=url, key=LIVE)
        stats = live.stats()
    assert refused.code == 1
    assert "this state belongs to account" in refused.stderr and "reset JOB.toml" in refused.stderr
    assert KEY not in refused.stderr + refused.stdout and LIVE not in refused.stderr
    assert dry.code == 0 and valid.code == 0, dry.stderr + valid.stderr
    assert sent_before_reset == 0  # the refused run sent nothing
    assert reset.code == 0 and again.code == 0, again.stderr
    assert stats["distinct_ids"] == 150  # after reset, everything went to the new account
