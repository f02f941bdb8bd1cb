"""Reading Omneo objects field by field, and the parts profiles and transactions share.

Parsing is where Omneo's mess is dealt with, so that the mapping to Ometria works on clean,
typed values only (msgspec Structs). A value that cannot be read unambiguously raises
:class:`FieldError` naming its path in the Omneo object (``aggregations.spend_12m``,
``items[2].quantity``); the reader turns it into a dead letter. Fields the connector does not
use are ignored. Field meanings: ``shared/reference/omneo-api.md`` sections 5 to 7, seed 001.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from msgspec import Struct

from ometria_sync.schemas import field_path
from ometria_sync.sources.omneo import normalise as n

T = TypeVar("T")


class FieldError(ValueError):
    """A field of an Omneo object that cannot be read: where it is and why."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}" if path else reason)


class Fields:
    """One Omneo object, read field by field through a normaliser that names the path."""

    __slots__ = ("path", "raw", "zone")

    def __init__(self, raw: dict[str, Any], path: str, zone: dt.tzinfo) -> None:
        self.raw = raw
        self.path = path
        self.zone = zone

    def get(self, key: str, convert: Callable[[Any], T]) -> T:
        try:
            return convert(self.raw.get(key))
        except n.Unusable as exc:
            raise FieldError(field_path(self.path, key), str(exc)) from None

    def text(self, key: str) -> str | None:
        return self.get(key, n.text)

    def number(self, key: str) -> float | None:
        return self.get(key, n.number)

    def integer(self, key: str) -> int | None:
        return self.get(key, n.integer)

    def flag(self, key: str) -> bool | None:
        return self.get(key, n.boolean)

    def when(self, key: str, zone: dt.tzinfo | None = None) -> dt.datetime | None:
        return self.get(key, lambda value: n.timestamp(value, zone or self.zone))

    def texts(self, key: str) -> list[str]:
        return self.get(key, n.texts)

    def child(self, key: str) -> Fields | None:
        raw = self.get(key, n.obj)
        return None if raw is None else Fields(raw, field_path(self.path, key), self.zone)

    def children(self, key: str) -> list[Fields]:
        """The objects of a list (absent entries skipped); anything else in it is an error."""
        found: list[Fields] = []
        for index, item in enumerate(self.get(key, n.items)):
            path = f"{field_path(self.path, key)}[{index}]"
            try:
                raw = n.obj(item)
            except n.Unusable as exc:
                raise FieldError(path, str(exc)) from None
            if raw is not None:
                found.append(Fields(raw, path, self.zone))
        return found

    def location(self, key: str, scalar: Literal["id", "name"]) -> Location | None:
        """A Location object; a bare number or text is its id (or name, where Omneo documents
        the field as the store's name)."""
        value = self.raw.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            shown = self.text(key)
            if shown is None:
                return None
            return Location(id=shown) if scalar == "id" else Location(name=shown)
        found = self.child(key)
        return None if found is None else parse_location(found)


# --- shared parts --------------------------------------------------------------------------

class Location(Struct, frozen=True, gc=False):
    """A store: what orders use as ``store`` and contacts as store properties."""

    id: str | None = None
    name: str | None = None
    external_id: str | None = None
    external_code: str | None = None


class Identity(Struct, frozen=True, gc=False):
    """An id of the profile in another system (``handle`` names the system)."""

    handle: str | None
    identifier: str | None


def parse_location(f: Fields) -> Location:
    """The store fields Ometria can use; the rest of Omneo's Location is ignored."""
    return Location(id=f.text("id"), name=f.text("name"), external_id=f.text("external_id"),
                    external_code=f.text("external_code"))


def identities(f: Fields) -> list[Identity]:
    """``identities[]``: the profile's ids in other systems."""
    return [Identity(handle=i.text("handle"), identifier=i.text("identifier"))
            for i in f.children("identities")]


def country(f: Fields) -> str | None:
    """``address.iso`` when it is a two-letter code (its format is unconfirmed)."""
    address = f.child("address")
    iso = address.text("iso") if address is not None else None
    return iso.upper() if iso and len(iso) == 2 and iso.isalpha() and iso.isascii() else None


def currency(f: Fields, key: str) -> str | None:
    """A three-letter code, upper-cased (``"aud"`` -> ``"AUD"``); anything else is an error."""
    code = f.text(key)
    if code is None:
        return None
    if len(code) != 3 or not code.isalpha() or not code.isascii():
        raise FieldError(field_path(f.path, key), f"not an ISO 4217 currency code: {code!r}")
    return code.upper()


def root(raw: Any, path: str, zone: dt.tzinfo) -> Fields:
    """The top object of an answer; anything but a non-empty object is a FieldError."""
    try:
        found = n.obj(raw)
    except n.Unusable as exc:
        raise FieldError(path, str(exc)) from None
    if found is None:
        raise FieldError(path, "empty")
    return Fields(found, path, zone)
