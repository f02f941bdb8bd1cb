"""``omneo_transactions``: transactions changed since the checkpoint, as orders. The order's
customer is the transaction's profile: its email comes from the transaction when Omneo embeds
it, else from ``GET /profiles/{id}``, looked up once per profile and remembered."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import OrderedDict
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import structlog

from ometria_sync.sources.base import Source, SourceItem
from ometria_sync.sources.omneo.client import OmneoClient
from ometria_sync.sources.omneo.fields import FieldError
from ometria_sync.sources.omneo.normalise import known_zone
from ometria_sync.sources.omneo.orders import to_order
from ometria_sync.sources.omneo.pages import Entry
from ometria_sync.sources.omneo.profile import Profile, parse_profile
from ometria_sync.sources.omneo.reader import (
    OmneoPart,
    OmneoSource,
    error_item,
    gather_all,
    key_reader,
)
from ometria_sync.sources.omneo.transaction import Transaction, parse_transaction

if TYPE_CHECKING:  # the settings import the readers to open them
    from ometria_sync.sources.omneo.config import OmneoTransactionsConfig

log = structlog.get_logger("ometria_sync.omneo")

#: profiles remembered by the transaction source (most recently used)
PROFILE_CACHE = 50_000


class ProfileCache:
    """Profiles looked up by id, each asked for once even when pages overlap in time (the
    look-up in flight is shared), the most recently used ``size`` kept."""

    def __init__(self, zone: dt.tzinfo, size: int = PROFILE_CACHE) -> None:
        self._zone = zone
        self._size = size
        self._found: OrderedDict[str, asyncio.Task[Profile | None]] = OrderedDict()
        self.looked_up = 0

    def __contains__(self, profile_id: str) -> bool:
        return profile_id in self._found

    async def fetch(self, client: OmneoClient, profile_ids: list[str]) -> None:
        """Look up what is not known yet; wait for what is being looked up."""
        for profile_id in profile_ids:
            if profile_id not in self._found:
                self._found[profile_id] = asyncio.ensure_future(self._lookup(client, profile_id))
                self._evict()
        await gather_all(self._found[p] for p in profile_ids if p in self._found)

    def get(self, profile_id: str) -> Profile | None:
        task = self._found.get(profile_id)
        if task is None or not task.done() or task.cancelled() or task.exception():
            return None
        self._found.move_to_end(profile_id)
        return task.result()

    def _evict(self) -> None:
        while len(self._found) > self._size:
            oldest = next(iter(self._found))
            if not self._found[oldest].done():
                return
            del self._found[oldest]

    async def _lookup(self, client: OmneoClient, profile_id: str) -> Profile | None:
        answer = await client.find(f"/profiles/{quote(profile_id, safe='')}")
        self.looked_up += 1
        data = answer.get("data") if isinstance(answer, dict) else None
        if data is None:
            return None
        try:
            return parse_profile(data, self._zone)
        except FieldError as exc:
            log.warning("omneo_profile_unreadable", profile=profile_id, error=str(exc))
            return None


class TransactionConverter:
    """Transactions of one page -> orders, with their profiles looked up (and remembered)."""

    def __init__(self, settings: OmneoTransactionsConfig) -> None:
        self.settings = settings
        self.zone = known_zone(settings.timezone)
        self.profiles = ProfileCache(self.zone)

    async def __call__(self, client: OmneoClient, entries: list[Entry]) -> list[SourceItem]:
        parsed = [self._parse(e) for e in entries]
        wanted = {t.profile_id for t in parsed
                  if isinstance(t, Transaction) and t.profile_id and self._needs_lookup(t)}
        await self.profiles.fetch(client, sorted(wanted))
        return [t if isinstance(t, SourceItem) else self._item(entry, t)
                for entry, t in zip(entries, parsed, strict=True)]

    def summary(self) -> dict[str, Any]:
        return {"profiles_looked_up": self.profiles.looked_up}

    def _parse(self, entry: Entry) -> Transaction | SourceItem:
        if entry.error is not None:
            return error_item("transaction", entry, entry.error)
        try:
            return parse_transaction(entry.raw, self.zone)
        except FieldError as exc:
            return error_item("transaction", entry, str(exc))

    def _needs_lookup(self, tx: Transaction) -> bool:
        """Look the profile up when the transaction does not carry what the order needs."""
        if not self.settings.lookup_profiles:
            return False
        embedded = tx.profile
        if embedded is None or embedded.email is None:
            return True
        if self.settings.customer_id == "external_id":
            return embedded.external_id is None
        return self.settings.customer_id == "identity" and not embedded.identities

    def _item(self, entry: Entry, tx: Transaction) -> SourceItem:
        known = self.profiles.get(tx.profile_id) if tx.profile_id else None
        try:
            order = to_order(tx, known or tx.profile, self.settings)
        except FieldError as exc:
            return error_item("transaction", entry, str(exc))
        return SourceItem(record=order, position=entry.position)


def transactions_source(settings: OmneoTransactionsConfig) -> Source:
    zone = known_zone(settings.timezone)
    convert = TransactionConverter(settings)
    key_of = key_reader(zone, lambda f: f.integer("id"))
    extra = {"include": settings.include} if settings.include else {}

    return OmneoSource(settings, lambda client: OmneoPart(
        settings, "/transactions", convert, key_of, client, extra))
