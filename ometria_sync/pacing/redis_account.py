"""Where one account's shared budget lives in Redis, and how the Redis URL stays secret.

Guarantees: nothing of the Ometria key reaches Redis (the account is known by
``sha256(normalised base_url NUL api_key)[:16]``: every spelling of the base URL that the
state calls one account, ``.../v2`` and ``.../v2/`` among them, is one budget), and no
secret of the URL (its password, a token user, a ``?password=``) appears in a message
(``net/urls.py``: the one redaction of every URL). Clients fail fast (2 s timeouts, no
retries of their own): the callers decide how long Redis may stay away.
"""

from __future__ import annotations

import hashlib

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ometria_sync.errors import RateBudgetError
from ometria_sync.net.urls import normalise_url, redact_url, safe_message


def account_prefix(base_url: str, api_key: str) -> str:
    """The Redis key prefix of one Ometria account: a hash, nothing of the key itself; the
    base URL normalised as the state's account identity does."""
    digest = hashlib.sha256(f"{normalise_url(base_url)}\0{api_key}".encode()).hexdigest()[:16]
    return f"ometria-sync:{digest}:"


def open_client(url: str) -> aioredis.Redis:
    """A client that fails fast: 2 s timeouts, no retries, no health checks."""
    return aioredis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0,
                             retry=Retry(NoBackoff(), 0), health_check_interval=0)


async def live_processes(url: str, *, base_url: str, api_key: str) -> int:
    """How many processes used the account's shared budget in the last 5 seconds (read only:
    the caller does not count itself in). Raises :class:`RateBudgetError`."""
    client = open_client(url)
    try:
        seconds, micros = await client.time()
        now = seconds * 1_000_000 + micros
        key = account_prefix(base_url, api_key) + "processes"
        return int(await client.zcount(key, now - 5_000_000, "+inf"))
    except (RedisError, OSError) as exc:
        raise RateBudgetError(f"cannot reach {redact_url(url)}: "
                              f"{safe_message(exc, url)}") from None
    finally:
        await client.aclose()
