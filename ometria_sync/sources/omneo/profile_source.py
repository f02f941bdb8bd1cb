"""``omneo_profiles``: profiles changed since the checkpoint, with their aggregations, as
contacts. Aggregations are one request per profile, fetched concurrently (see :mod:`.reader`);
404 means "none yet" and the contact goes without them."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ometria_sync.sources.base import Source, SourceItem
from ometria_sync.sources.omneo.client import OmneoClient
from ometria_sync.sources.omneo.contacts import to_contact
from ometria_sync.sources.omneo.fields import FieldError
from ometria_sync.sources.omneo.normalise import known_zone
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

if TYPE_CHECKING:  # the settings import the readers to open them
    from ometria_sync.sources.omneo.config import OmneoProfilesConfig


class ProfileConverter:
    """Profiles of one page -> contacts, with their aggregations fetched concurrently."""

    def __init__(self, settings: OmneoProfilesConfig) -> None:
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


def profiles_source(settings: OmneoProfilesConfig) -> Source:
    zone = known_zone(settings.timezone)
    convert = ProfileConverter(settings)
    key_of = key_reader(zone, lambda f: f.text("id"))
    return OmneoSource(settings, lambda client: OmneoPart(
        settings, "/profiles", convert, key_of, client))
