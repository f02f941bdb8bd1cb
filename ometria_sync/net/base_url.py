"""One spelling of an Ometria base URL, so that everything keyed by the account agrees.

The state's account identity (:mod:`ometria_sync.state.account`) and the shared rate budget's
Redis key (:mod:`ometria_sync.pacing.redis_budget`) both use :func:`normalise_url`: every
process the state treats as the same account shares one budget (``.../v2`` and ``.../v2/``
post to the same URL and count against the same limit).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["normalise_url"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_url(url: str) -> str:
    """Lower-case scheme and host, default port and trailing slashes dropped."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), parts.query, ""))
