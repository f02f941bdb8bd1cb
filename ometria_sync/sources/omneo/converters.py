"""What the two Omneo sources make of a page.

``omneo_profiles``: profiles changed since the checkpoint, with their aggregations, as
contacts. Aggregations are one request per profile, fetched concurrently (see :mod:`.reader`);
404 means "none yet" and the contact goes without them.

``omneo_transactions``: transactions changed since the checkpoint, as orders. The order's
customer is the transaction's profile: its email comes from the transaction when Omneo embeds
it, else from ``GET /profiles/{id}``, looked up once per profile and remembered.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter, OrderedDict
from typing import Any
from urllib.parse import quote

import structlog

from ometria_sync.sources.base import Source, SourceItem
from ometria_sync.sources.omneo.client import OmneoClient
from ometria_sync.sources.omneo.contacts import to_contact
from ometria_sync.sources.omneo.fields import FieldError
from ometria_sync.sources.omneo.normalise import known_zone
from ometria_sync.sources.omneo.orders import to_order
from ometria_sync.sources.omneo.pages import Entry
from ometria_sync.sources.omneo.profile import (
    Aggregations,
    Profile,
    parse_aggregations,
    parse_profile,
)
from ometria_sync.sources.omneo.reader import (
    OmneoPart,
    OmneoSource,
    error_item,
    gather_all,
    key_reader,
)
from ometria_sync.sources.omneo.settings import OmneoProfilesSettings, OmneoTransactionsSettings
from ometria_sync.sources.omneo.transaction import Transaction, parse_transaction

log = structlog.get_logger("ometria_sync.omneo")

#: profiles remembered by the transaction source (most recently used)
PROFILE_CACHE = 50_000


class ProfileConverter:
    """Profiles of one page -> contacts, with their aggregations fetched concurrently."""

    def __init__(self, settings: OmneoProfilesSettings) -> None:
        self.settings = settings
        self.zone = known_zone(settings.timezone)
        self.skip_types = {t.lower() for t in settings.skip_profile_types}
        self.skipped: Counter[str] = Counter()

    async def __call__(self, client: OmneoClient, entries: list[Entry]) -> list[SourceItem]:
        parsed = [self._parse(e) for e in entries]
        wanted = [p for p in parsed if isinstance(p, Profile)]
        found = await gather_all(self._aggregations(client, p) for p in wanted)
        by_id = {id(p): a for p, a in zip(wanted, found, strict=True)}
        items: list[SourceItem] = []
        for entry, profile in zip(entries, parsed, strict=True):
            if isinstance(profile, SourceItem):
                items.append(profile)
            elif profile is not None:
                items.append(self._item(entry, profile, by_id[id(profile)]))
        return items

    def _parse(self, entry: Entry) -> Profile | SourceItem | None:
        """The profile, its dead letter, or None for a profile type that is not sent."""
        if entry.error is not None:
            return error_item("profile", entry, entry.error)
        try:
            profile = parse_profile(entry.raw, self.zone)
        except FieldError as exc:
            return error_item("profile", entry, str(exc))
        if profile.profile_type and profile.profile_type.lower() in self.skip_types:
            self.skipped[profile.profile_type.lower()] += 1
            return None
        return profile

    def summary(self) -> dict[str, Any]:
        return {"skipped_profile_types": dict(self.skipped)}

    async def _aggregations(self, client: OmneoClient, profile: Profile
                            ) -> Aggregations | FieldError | None:
        if not self.settings.aggregations:
            return None
        answer = await client.find(f"/profiles/{quote(profile.id, safe='')}/aggregations")
        data = answer.get("data") if isinstance(answer, dict) and "data" in answer else answer
        try:
            return parse_aggregations(data, self.zone)
        except FieldError as exc:
            return exc

    def _item(self, entry: Entry, profile: Profile,
              aggregations: Aggregations | FieldError | None) -> SourceItem:
        if isinstance(aggregations, FieldError):
            return error_item("profile", entry, str(aggregations))
        contact = to_contact(profile, aggregations, self.settings)
        return SourceItem(record=contact, position=entry.position)


def profiles_source(settings: OmneoProfilesSettings) -> Source:
    zone = known_zone(settings.timezone)
    convert = ProfileConverter(settings)
    key_of = key_reader(zone, lambda f: f.text("id"))
    return OmneoSource(settings, lambda client: OmneoPart(
        settings, "/profiles", convert, key_of, client, id_path=_profile_path))


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

    def __init__(self, settings: OmneoTransactionsSettings) -> None:
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


def transactions_source(settings: OmneoTransactionsSettings) -> Source:
    zone = known_zone(settings.timezone)
    convert = TransactionConverter(settings)
    key_of = key_reader(zone, lambda f: f.integer("id"))
    extra = {"include": settings.include} if settings.include else {}

    return OmneoSource(settings, lambda client: OmneoPart(
        settings, "/transactions", convert, key_of, client, extra,
        id_path=lambda order_id: _transaction_path(order_id, settings)))


def _profile_path(contact_id: str) -> str | None:
    """A contact's id is its profile's (a ``collection/id`` key is not one)."""
    return None if "/" in contact_id else f"/profiles/{quote(contact_id, safe='')}"


def _transaction_path(order_id: str, settings: OmneoTransactionsSettings) -> str | None:
    """The transaction an order id names: Omneo's id after the prefix, or the receipt number
    (``GET /transactions/external/{id}``, reference section 4)."""
    if settings.order_id == "external_id":
        return None if "/" in order_id else f"/transactions/external/{quote(order_id, safe='')}"
    prefix = settings.order_id_prefix
    number = order_id[len(prefix):] if order_id.startswith(prefix) else ""
    return f"/transactions/{number}" if number.isdigit() else None
