"""The account's place in Redis and the URL's secret: redaction, key prefix, live processes."""

from __future__ import annotations

import uuid

from ometria_sync.pacing.redis_account import (
    live_processes,
    redact_url,
    safe_message,
    url_password,
)
from ometria_sync.pacing.shared_budget import SharedBudget
from tests.redis_server import REDIS_URL, require_redis

CANARY = "canary-pw-5e1b0c77d3"


def test_redact_url() -> None:
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redact_url(f"rediss://:{CANARY}@h.example:6380/1") == "rediss://***@h.example:6380/1"
    assert redact_url(f"redis://bob:{CANARY}@h/0") == "redis://bob:***@h/0"
    assert redact_url(f"redis://{CANARY}@h/0") == "redis://***@h/0"


def test_the_secret_of_a_url_is_its_password_or_a_bare_token_user() -> None:
    assert url_password(f"redis://bob:{CANARY}@h/0") == CANARY
    assert url_password(f"redis://{CANARY}@h/0") == CANARY
    assert url_password("redis://h/0") is None
    assert url_password("redis://[::1/0") is None  # unparsable


def test_no_message_carries_the_password() -> None:
    """Whatever an exception says, the secret is replaced; an empty one is named by its type."""
    assert safe_message(OSError(f"auth {CANARY} refused"), CANARY) == "auth *** refused"
    assert safe_message(OSError(f"auth {CANARY} refused"), None) == f"auth {CANARY} refused"
    assert safe_message(TimeoutError(), CANARY) == "TimeoutError"


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
