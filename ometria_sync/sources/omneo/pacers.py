"""One pacer per Omneo tenant: every stream that reads it, and their start-up checks, share it.

Omneo counts requests per tenant, not per stream. Separate pacers (one per stream, and a
throwaway one per preflight) each kept to the rate, and together went over it: six requests
inside one second at the start of every run. Pacers are kept per event loop (a pacer's timing
and lock belong to the loop that runs it) and per base URL.
"""

from __future__ import annotations

import asyncio
import weakref

import structlog

from ometria_sync.pacing.pacer import Pacer

log = structlog.get_logger("ometria_sync.omneo")

_PACERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Pacer]] = (
    weakref.WeakKeyDictionary())


def tenant_pacer(base_url: str, rate: float) -> Pacer:
    """The pacer of the tenant at ``base_url`` in the running loop, made at ``rate`` by its
    first caller. A caller asking for another rate gets it too (the job file check makes the
    streams of one tenant agree)."""
    pacers = _PACERS.setdefault(asyncio.get_running_loop(), {})
    key = base_url.rstrip("/").lower()
    pacer = pacers.get(key)
    if pacer is None:
        pacer = pacers[key] = Pacer(rate)
    elif pacer.limit != rate:
        log.warning("omneo_rate_shared", base_url=key, asked=rate, rate=pacer.limit)
    return pacer
