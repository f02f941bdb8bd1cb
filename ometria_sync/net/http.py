"""HTTP facts both clients (Ometria's and Omneo's) rely on: the Retry-After header, TLS, and
which hosts may be spoken to over plain http://."""

from __future__ import annotations

import email.utils
import ipaddress
import ssl
import time


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


def ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Certificate verification is always on; ``ca_bundle`` replaces the system's trust store."""
    return ssl.create_default_context(cafile=ca_bundle)


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
