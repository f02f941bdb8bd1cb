"""The default ``properties`` Omneo fills on Ometria records, and the job file's overrides.

Ometria segments on flat scalars, so every property is a number or a text: dates are ISO 8601
with an offset, lists (``purchased_brands``, ``tags``) are joined into one text, and Omneo's
nested objects (locations, currencies) are never copied whole (they would push a record
towards Ometria's 60 KB limit). The dimension codes (``F1``, ``RC``...) are passed through
unchanged: Omneo's documents disagree on what they mean.

Each default has a *base name*; the name sent is ``prefix + rename.get(base, base)``, and
``drop`` leaves a base name out. Absent values are left out (never sent as null, which would
delete the stored value).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from ometria_sync.errors import ConfigError
from ometria_sync.sources.omneo.fields import Location
from ometria_sync.sources.omneo.normalise import iso
from ometria_sync.sources.omneo.profile import Aggregations, Profile
from ometria_sync.sources.omneo.transaction import Item, Transaction

Scalar = str | float | int | bool
Value = Scalar | list[str] | dt.datetime | None


class PropertyMapping(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``properties = { prefix = "omneo_", rename = { spend_12m = "ltv_12m" }, drop = [...] }``"""

    prefix: str = "omneo_"
    #: base name -> the name to send instead (the prefix still goes before it)
    rename: dict[str, str] = msgspec.field(default_factory=dict)
    #: base names not to send
    drop: list[str] = msgspec.field(default_factory=list)
    #: joins list values (brands, tags) into one text
    list_separator: str = ";"

    def check(self, key: str, known: Iterable[str]) -> None:
        """Rename and drop name known properties; the names sent are distinct."""
        names = tuple(known)
        for section, bases in (("rename", list(self.rename)), ("drop", self.drop)):
            for base in bases:
                if base not in names:
                    raise ConfigError(f"{key}.{section}.{base}",
                                      f"no such property; known: {', '.join(names)}")
        sent: dict[str, str] = {}
        for base in names:
            if base in self.drop:
                continue
            name = self.name(base)
            if not name.strip() or name.startswith("@"):
                raise ConfigError(f"{key}.rename.{base}", f"not a usable name: {name!r}")
            if name in sent:
                raise ConfigError(f"{key}.rename.{base}",
                                  f"{name!r} is also the name of {sent[name]!r}")
            sent[name] = base

    def name(self, base: str) -> str:
        return self.prefix + self.rename.get(base, base)

    def apply(self, values: dict[str, Value]) -> dict[str, Scalar]:
        """The properties to send, from base names to (possibly absent) values."""
        out: dict[str, Scalar] = {}
        for base, value in values.items():
            if base in self.drop:
                continue
            scalar = self._scalar(value)
            if scalar is not None:
                out[self.name(base)] = scalar
        return out

    def _scalar(self, value: Value) -> Scalar | None:
        if isinstance(value, list):
            return self.list_separator.join(value) if value else None
        if isinstance(value, dt.datetime):
            return iso(value)
        return value


def _name(location: Location | None) -> str | None:
    return location.name if location is not None else None


def _code(location: Location | None) -> str | None:
    return location.external_code if location is not None else None


AggregationGetter = Callable[[Aggregations], Value]

#: base name -> the aggregation figure it carries
AGGREGATION_PROPERTIES: dict[str, AggregationGetter] = {
    "spend_12m": lambda a: a.spend_12m,
    "spend_all": lambda a: a.spend_all,
    "atv_12m": lambda a: a.spend_atv_12m,
    "atv_all": lambda a: a.spend_atv_all,
    "shop_count": lambda a: a.shop_count,
    "shop_days": lambda a: a.shop_days,
    "discount_avg": lambda a: a.discount_avg,
    "first_spend_at": lambda a: a.spend_first_date,
    "last_spend_at": lambda a: a.spend_last_date,
    "at_risk_date": lambda a: a.at_risk_date,
    "frequency": lambda a: a.dimension_frequency,
    "recency": lambda a: a.dimension_recency,
    "join": lambda a: a.dimension_join,
    "channel": lambda a: a.channel,
    "store_join": lambda a: _name(a.store_join),
    "store_join_code": lambda a: _code(a.store_join),
    "top_location": lambda a: _name(a.most_transacted_location),
    "top_location_code": lambda a: _code(a.most_transacted_location),
    "likely_country": lambda a: a.likely_country,
    "likely_country_iso": lambda a: a.likely_country_iso,
    "brands": lambda a: a.purchased_brands,
}

#: base name -> the profile's loyalty field it carries
PROFILE_PROPERTIES: dict[str, Callable[[Profile], Value]] = {
    "tier": lambda p: p.tier_handle,
    "points": lambda p: p.point_balance,
    "rewards": lambda p: p.reward_balance,
}

ORDER_PROPERTIES: dict[str, Callable[[Transaction], Value]] = {
    "external_id": lambda t: t.external_id,
    "receipt_ref": lambda t: t.receipt_ref,
    "order_number": lambda t: t.order_number,
    "type": lambda t: t.type,
    "tags": lambda t: t.tags,
    "store_name": lambda t: _name(t.location),
}

LINE_ITEM_PROPERTIES: dict[str, Callable[[Item], Value]] = {
    "name": lambda i: i.name,
    "department": lambda i: i.department,
    "item_external_id": lambda i: i.external_id,
}

CONTACT_NAMES: tuple[str, ...] = (*AGGREGATION_PROPERTIES, *PROFILE_PROPERTIES)
ORDER_NAMES: tuple[str, ...] = (*ORDER_PROPERTIES, *LINE_ITEM_PROPERTIES)


def contact_values(profile: Profile, aggregations: Aggregations | None) -> dict[str, Value]:
    values: dict[str, Value] = {k: get(profile) for k, get in PROFILE_PROPERTIES.items()}
    if aggregations is not None:
        values.update((k, get(aggregations)) for k, get in AGGREGATION_PROPERTIES.items())
    return values


def table(source: dict[str, Callable[[Any], Value]], obj: Any) -> dict[str, Value]:
    return {k: get(obj) for k, get in source.items()}
