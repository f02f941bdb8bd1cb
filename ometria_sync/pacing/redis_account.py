"""Where one account's shared budget lives in Redis, and how the Redis URL stays secret.

Guarantees: nothing of the Ometria key reaches Redis (the account is known by
``sha256(normalised base_url NUL api_key)[:16]``: every spelling of the base URL that the
state calls one account, ``.../v2`` and ``.../v2/`` among them, is one budget), and the
URL's password never appears in a message (:func:`redact_url` for the URL,
:func:`safe_message` for an error that might quote it). Clients fail fast (2 s timeouts, no
retries of their own): the callers decide how long Redis may stay away.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ometria_sync.errors import RateBudgetError
from ometria_sync.net.base_url import normalise_url


def redact_url(url: str) -> str:
    """``url`` with its password (and a bare token user) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        if parts.password is None and parts.username is None:
            return url
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        user = parts.username if parts.password is not None else "***"
        auth = f"{user}:***" if parts.password is not None and user else "***"
        return urlunsplit((parts.scheme, f"{auth}@{host}", parts.path, parts.query, ""))
    except ValueError:
        return "<unparsable redis URL>"


def url_password(url: str) -> str | None:
    """The secret of a Redis URL: its password, or a bare token user."""
    try:
        return urlsplit(url).password or urlsplit(url).username
    except ValueError:
        return None


def safe_message(exc: BaseException, password: str | None) -> str:
    """An exception's message without the URL's password (redis-py does not put it there, but
    every message is checked anyway)."""
    text = str(exc) or type(exc).__name__
    if password:
        text = text.replace(password, "***")
    return text


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
                              f"{safe_message(exc, url_password(url))}") from None
    finally:
        await client.aclose()
