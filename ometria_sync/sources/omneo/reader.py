"""The two Omneo sources: pages walked in key order, enriched concurrently, mapped, in order.

Reading a page of profiles costs one request, its aggregations one request per profile. So
that Omneo's pacer (not the walk) is the limit, the aggregations of up to ``_LOOKAHEAD + 1``
pages are fetched at once, ``concurrency`` requests in flight, while the next page is asked
for; chunks still come out in page order, each item with the position after it, so the
checkpoint keeps its meaning. A record that cannot be read or mapped becomes a SourceItem with
``error`` naming the Omneo object, the field and the reason (the engine dead-letters it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import msgspec
import structlog

from ometria_sync.net.backoff import Backoff
from ometria_sync.schemas.problems import show
from ometria_sync.sources.base import Position, SourceItem, SourcePart
from ometria_sync.sources.omneo.client import OmneoClient
from ometria_sync.sources.omneo.fields import FieldError, root
from ometria_sync.sources.omneo.normalise import known_zone
from ometria_sync.sources.omneo.pacers import tenant_pacer
from ometria_sync.sources.omneo.pages import Entry, Key, Walk, WalkSettings

if TYPE_CHECKING:  # the settings import the readers to open them
    from ometria_sync.sources.omneo.config import OmneoSourceConfig

log = structlog.get_logger("ometria_sync.omneo")

_LOOKAHEAD = 2
T = TypeVar("T")


class Converter(Protocol):
    """Turns the new rows of one page into source items, in the same order."""

    async def __call__(self, client: OmneoClient, entries: list[Entry]) -> list[SourceItem]: ...

    def summary(self) -> dict[str, Any]:
        """Counts for the end-of-read log line."""
        ...


async def gather_all(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """``asyncio.gather``, but the first failure cancels the rest (no request outlives it)."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def new_client(settings: OmneoSourceConfig) -> OmneoClient:
    """A client paced by the tenant's one pacer (shared with every other client of it)."""
    return OmneoClient(
        settings.url, settings.read_token(), rate=settings.rate_limit_per_second,
        concurrency=settings.concurrency, timeout=settings.request_timeout,
        max_retries=settings.max_retries, retry_after_cap=settings.retry_after_cap,
        backoff=Backoff(settings.backoff_base, settings.backoff_cap),
        ca_bundle=settings.ca_bundle,
        pacer=tenant_pacer(settings.url, settings.rate_limit_per_second),
    )


class OmneoPart:
    """One Omneo collection, checkpointed by ``[updated_at, id]``."""

    def __init__(self, settings: OmneoSourceConfig, path: str, convert: Converter,
                 key_of: Callable[[Any], Key], client: Callable[[], OmneoClient],
                 extra: dict[str, str] | None = None) -> None:
        self._settings = settings
        self._path = path
        self._convert = convert
        self._key_of = key_of
        self._client = client
        self._walk = walk_settings(settings, extra)

    @property
    def key(self) -> str:
        return ""

    @property
    def label(self) -> str:
        return f"omneo {self._settings.url}{self._path}"

    async def fingerprint(self) -> str | None:
        """Another tenant (or collection) starts from the top; the token is not part of it."""
        return "omneo:" + hashlib.sha256(self.label.encode()).hexdigest()[:16]

    async def size(self) -> int | None:
        """A collection's size is not known before it is walked."""
        return None

    async def read(self, start: Position | None) -> AsyncIterator[list[SourceItem]]:
        client = self._client()
        walk = Walk(client, self._path, self._walk, self._key_of, start)
        pending: deque[asyncio.Task[list[SourceItem]]] = deque()
        try:
            async for entries in walk.pages():
                pending.append(asyncio.create_task(self._convert(client, entries)))
                while pending and (len(pending) > _LOOKAHEAD or pending[0].done()):
                    chunk = await pending.popleft()
                    if chunk:
                        yield chunk
            while pending:
                chunk = await pending.popleft()
                if chunk:
                    yield chunk
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        log.info("omneo_read", path=self._path, pages=walk.requests, requests=client.requests,
                 **self._convert.summary())


def walk_settings(settings: OmneoSourceConfig, extra: dict[str, str] | None = None
                  ) -> WalkSettings:
    return WalkSettings(
        page_size=settings.page_size, sort=settings.sort, updated_filter=settings.updated_filter,
        page_size_param=settings.page_size_param, page_number_param=settings.page_number_param,
        lookback_seconds=settings.lookback_seconds, zone=known_zone(settings.timezone),
        extra=extra or {},
    )


class OmneoSource:
    """A source of one part; the client is made in the event loop, on first use."""

    def __init__(self, settings: OmneoSourceConfig,
                 make_part: Callable[[Callable[[], OmneoClient]], SourcePart]) -> None:
        self._settings = settings
        self._client: OmneoClient | None = None
        self._part = make_part(self.client)

    def client(self) -> OmneoClient:
        if self._client is None:
            self._client = new_client(self._settings)
        return self._client

    async def parts(self) -> list[SourcePart]:
        return [self._part]

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def key_reader(zone: dt.tzinfo, id_of: Callable[[Any], Any]) -> Callable[[Any], Key]:
    """``(updated_at, id)`` of a raw row; FieldError (a ValueError) when it has none."""
    def key_of(raw: Any) -> Key:
        f = root(raw, "", zone)
        ident = id_of(f)
        if ident is None:
            raise FieldError("id", "missing")
        updated = f.when("updated_at")
        if updated is None:
            raise FieldError("updated_at", "missing")
        return updated, ident
    return key_of


def error_item(what: str, entry: Entry, reason: str) -> SourceItem:
    """The dead letter of an Omneo object: ``omneo profile <id>: <path>: <reason>``, with the
    object as Omneo sent it."""
    raw = entry.raw
    ident = raw.get("id") if isinstance(raw, dict) else None
    if isinstance(ident, str | int) and not isinstance(ident, bool) and str(ident).strip():
        name = f"omneo {what} {ident}"
    else:
        name = f"omneo {what} without id" if ident is None else f"omneo {what} {show(ident)}"
    try:
        body: bytes | None = msgspec.json.encode(raw)
    except (TypeError, ValueError, OverflowError):
        body = None
    return SourceItem(record=None, position=entry.position, raw=body, error=f"{name}: {reason}")
