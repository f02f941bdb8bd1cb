"""What an HTTP client (Ometria's, Omneo's) needs to connect and to try again: TLS, its
credential (an API key, a token) read from a file or an environment variable, and its backoff.

Guarantee: no message ever contains the credential; each names the setting to fix
(``file_key`` or ``env_key``) and where it looked.
"""

from __future__ import annotations

import email.utils
import os
import random
import ssl
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated

import msgspec

from ometria_sync.errors import ConfigError


def ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Certificate verification is always on; ``ca_bundle`` replaces the system's trust store."""
    return ssl.create_default_context(cafile=ca_bundle)


def read_credential(
    *,
    path: str | None,
    file_key: str,
    env_name: str,
    env_key: str,
    holds: str,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The credential from the file at ``path`` if set, else from ``env_name``; surrounding
    white space (a trailing newline) is dropped. ``holds`` says what it is, for the message.

    Raises ConfigError when the file cannot be read or is empty, or the variable is unset."""
    if path:
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(file_key, f"cannot read {path}: {exc.strerror}") from None
        if not value:
            raise ConfigError(file_key, f"{path} is empty (it should hold {holds})")
        return value
    env = os.environ if environ is None else environ
    value = env.get(env_name, "").strip()
    if not value:
        raise ConfigError(
            env_key, f"the environment variable {env_name} is not set (it holds {holds})")
    return value


# -------------------------------------------------------------------------------------------------
# When an HTTP client tries again: exponential backoff with jitter, the server's
# ``Retry-After``, and the retry settings every client takes.
#
# "Equal jitter" (a uniform draw in ``[c/2, c]`` where ``c = min(cap, base * 2**attempt)``) spreads
# the retries of many dispatchers apart instead of having them hit the server together, while still
# waiting at least half the exponential delay. A server's ``Retry-After``
# is a floor: we never retry sooner than it asked.
# -------------------------------------------------------------------------------------------------

class Backoff:
    """Delays for successive attempts. ``rand`` is injected for deterministic tests."""

    def __init__(
        self,
        base: float = 0.5,
        cap: float = 30.0,
        *,
        rand: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.base = base
        self.cap = cap
        self._rand = rand

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 0)."""
        ceiling = min(self.cap, self.base * (2 ** min(attempt, 32)))
        jittered = self._rand(ceiling / 2, ceiling)
        return max(jittered, retry_after or 0.0)


def parse_retry_after(value: str | None, cap: float, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date).

    ``0``, a past date, or garbage mean "no hint" (None); a hint above ``cap`` is capped.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not seconds > 0 or seconds != seconds:  # rejects 0, negatives and NaN
        return None
    return min(seconds, cap)


class HttpRetrySettings(msgspec.Struct, frozen=True, kw_only=True):
    """How one HTTP API is waited for and retried (a base of the settings that talk to one)."""

    #: seconds one request may take, connection included
    request_timeout: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    #: retries of one request after 408/5xx/timeouts (Omneo: 429s too) before giving up
    max_retries: Annotated[int, msgspec.Meta(ge=0, le=100)] = 8
    #: longest pause a server's Retry-After may impose
    retry_after_cap: Annotated[float, msgspec.Meta(gt=0)] = 120.0
    backoff_base: Annotated[float, msgspec.Meta(gt=0)] = 0.5
    backoff_cap: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    #: a PEM bundle to verify the server's certificate with, instead of the system's
    ca_bundle: str | None = None
