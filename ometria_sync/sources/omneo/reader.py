"""The two Omneo sources: pages walked in key order, enriched concurrently, mapped, in order.

Reading a page of profiles costs one request, its aggregations one request per profile. So
that Omneo's pacer (not the walk) is the limit, the aggregations of up to ``_LOOKAHEAD + 1``
pages are fetched at once, ``concurrency`` requests in flight, while the next page is asked
for; chunks still come out in page order, each item with the position after it, so the
checkpoint keeps its meaning. A record that cannot be read or mapped becomes a SourceItem with
``error`` naming the Omneo object, the field and the reason (the engine dead-letters it).

One pacer per Omneo tenant: every stream that reads it, and their start-up checks, share it.

Omneo counts requests per tenant, not per stream. Separate pacers (one per stream, and a
throwaway one per preflight) each kept to the rate, and together went over it: six requests
inside one second at the start of every run. Pacers are kept per event loop (a pacer's timing
and lock belong to the loop that runs it) and per base URL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Protocol, TypeVar

import msgspec
import structlog

from ometria_sync.errors import ConfigError, SourceError
from ometria_sync.net import Backoff
from ometria_sync.pacing import Pacer
from ometria_sync.schemas import show_value
from ometria_sync.sources.base import Position, SourceItem, SourcePart
from ometria_sync.sources.omneo.client import OmneoAuthError, OmneoClient
from ometria_sync.sources.omneo.fields import FieldError, root
from ometria_sync.sources.omneo.normalise import known_zone
from ometria_sync.sources.omneo.pages import Entry, Key, Walk, WalkSettings
from ometria_sync.sources.omneo.settings import OmneoSourceConfig

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


async def preflight(settings: OmneoSourceConfig, key: str) -> None:
    """One request for one row: a refused token or an unreachable tenant stops the run
    before anything is sent, not when the stream's turn comes."""
    settings.check_credentials(key)
    client = new_client(settings)
    try:
        await client.get(settings.list_path, {settings.page_size_param: "1"})
    except OmneoAuthError as exc:
        where = "token_file" if settings.token_file else "token_env"
        raise ConfigError(f"{key}.{where}", str(exc)) from None
    except SourceError as exc:
        raise ConfigError(f"{key}.{'base_url' if settings.base_url else 'tenant'}",
                          f"Omneo cannot be read: {exc}") from None
    finally:
        await client.aclose()


#: the path of one object of a collection from an Ometria record's id (None: not this
#: collection's id, e.g. a contact's ``collection/id`` key or another order id scheme)
IdPath = Callable[[str], str | None]


class OmneoPart:
    """One Omneo collection, checkpointed by ``[updated_at, id]``."""

    def __init__(self, settings: OmneoSourceConfig, path: str, convert: Converter,
                 key_of: Callable[[Any], Key], client: Callable[[], OmneoClient],
                 extra: dict[str, str] | None = None, id_path: IdPath | None = None) -> None:
        self._settings = settings
        self._path = path
        self._convert = convert
        self._key_of = key_of
        self._client = client
        self._walk = walk_settings(settings, extra)
        self._id_path = id_path

    async def read_ids(self, ids: list[str]) -> list[SourceItem] | None:
        """The records of ``ids`` (Ometria ids) as Omneo holds them now, one GET each
        (``GET /profiles/{id}``, ``GET /transactions/{id}``) through the tenant's pacer,
        converted as a page's rows are: the ledger resends the current version rather than a
        kept payload. An id Omneo no longer has (404) gives nothing (the payload kept goes).
        None when the collection cannot be read by id. Positions are empty: these items are
        never checkpointed."""
        id_path = self._id_path
        if id_path is None:
            return None
        paths = sorted({path for i in ids if (path := id_path(i)) is not None})
        client = self._client()
        found = await gather_all(client.find(path) for path in paths)
        entries = [Entry(raw=answer["data"], key=None, position=[]) for answer in found
                   if isinstance(answer, dict) and isinstance(answer.get("data"), dict)]
        return await self._convert(client, entries) if entries else []

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
        name = f"omneo {what} without id" if ident is None else f"omneo {what} {show_value(ident)}"
    try:
        body: bytes | None = msgspec.json.encode(raw)
    except (TypeError, ValueError, OverflowError):
        body = None
    return SourceItem(record=None, position=entry.position, raw=body, error=f"{name}: {reason}")
