"""The account's place in Redis: key prefix, live processes (the URL's redaction is
``tests/net/test_urls.py``)."""

from __future__ import annotations

import uuid

from ometria_sync.pacing.redis_account import live_processes
from ometria_sync.pacing.shared_budget import SharedBudget
from tests.redis_server import REDIS_URL, require_redis


async def test_live_processes_counts_the_processes_of_one_account() -> None:
    """Two budgets of one account are two live processes; another account's are not counted."""
    require_redis()
    api_key = uuid.uuid4().hex
    account = {"base_url": "https://api.example/v2", "api_key": api_key}
    budgets = [await SharedBudget.connect(REDIS_URL, limit=4, **account) for _ in range(2)]
    other = await SharedBudget.connect(REDIS_URL, limit=4, base_url="https://api.example/v2",
                                       api_key=api_key + "x")
    try:
        assert await live_processes(REDIS_URL, **account) == 2
    finally:
        for budget in (*budgets, other):
            await budget.aclose()
