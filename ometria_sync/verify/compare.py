"""Comparing what was sent with what Ometria stores, by meaning rather than by bytes.

Not differences: the normalisation Ometria applies (an email address in another case, a
timestamp written with another offset for the same instant, ``10`` against ``10.0`` or a number
written as text), fields Ometria adds (a stored key that was never sent: derived totals, other
listings' properties) and the control keys (``@merge`` and friends), which Ometria does not
store. A difference is a sent value that is not stored, or is stored as something else; it
names the field path, the value sent and the value stored.

Per record type: where Ometria shows a record again, and how to compare it.

* orders: ``GET /orders/{id}`` or the ``GET /orders`` list, compared field by field;
* products: ``GET /products/{id}``;
* contacts: the profile Ometria built from the listing (``GET /profiles?email=``, or the
  ``GET /profiles`` list matched by ``customer_id``, then email). A profile shows the listing's
  names, gender, birth date, ``customer_id``, properties and its acquisition and subscription
  dates (``dates.acquired``, ``dates.marketing_optin``, ``dates.marketing_optout``); the email
  must be one of the profile's. Not compared: ``marketing_optin`` (Ometria's subscription
  hierarchy may rightly keep another status), and fields a profile does not show (phone,
  channels, store ids, timezone, ``@collection``);
* custom events: no read endpoint, so not verifiable.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

#: what Ometria acts on and does not store
CONTROL_KEYS = frozenset({"@merge", "@force_optin", "@add_to_lists", "@remove_from_lists"})


class Difference(msgspec.Struct, frozen=True):
    """One field that does not match: ``absent`` when Ometria stores nothing there."""

    path: str
    sent: Any
    stored: Any = None
    absent: bool = False

    def describe(self) -> str:
        stored = "absent" if self.absent else _show(self.stored)
        return f"{self.path}: sent {_show(self.sent)}, stored {stored}"


def _show(value: Any) -> str:
    text = msgspec.json.encode(value).decode()
    return text if len(text) <= 80 else text[:77] + "..."


def instant(value: str) -> dt.datetime | None:
    """The instant an ISO 8601 date-time with an offset names, or None."""
    if len(value) < 16 or value[10:11] not in ("T", " "):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _number(value: Any) -> Decimal | None:
    """A number as written in JSON (``10``, ``10.0``, ``1e1``, ``"10.00"``), exactly."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def same_scalar(sent: Any, stored: Any, field: str) -> bool:
    """True when two scalar values mean the same thing in field ``field``."""
    if sent == stored and type(sent) is type(stored):
        return True
    if isinstance(sent, bool) or isinstance(stored, bool):
        return sent is stored
    if isinstance(sent, (int, float)) or isinstance(stored, (int, float)):
        a, b = _number(sent), _number(stored)
        return a is not None and b is not None and a == b
    if isinstance(sent, str) and isinstance(stored, str):
        if field.endswith("email"):
            return sent.strip().casefold() == stored.strip().casefold()
        a_time, b_time = instant(sent), instant(stored)
        return a_time is not None and b_time is not None and a_time == b_time
    return False


def compare(sent: Any, stored: Any, path: str = "") -> list[Difference]:
    """The differences between a sent value and the stored one (empty: the same meaning).

    Objects: every sent key must be stored (a sent ``null`` deletes, so expects nothing);
    stored keys that were not sent are Ometria's own. Lists: the same length, item by item."""
    found: list[Difference] = []
    _compare(sent, stored, path, found, top=True)
    return found


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _compare(sent: Any, stored: Any, path: str, found: list[Difference], *,
             top: bool = False) -> None:
    if isinstance(sent, dict):
        _compare_object(sent, stored, path, found, top=top)
    elif isinstance(sent, list):
        if not isinstance(stored, list) or len(stored) != len(sent):
            found.append(Difference(path, sent, stored))
            return
        for index, (a, b) in enumerate(zip(sent, stored, strict=True)):
            _compare(a, b, f"{path}[{index}]", found)
    elif sent is None:
        if stored is not None:
            found.append(Difference(path, None, stored))
    elif not same_scalar(sent, stored, path.rsplit(".", 1)[-1]):
        found.append(Difference(path, sent, stored))


def _compare_object(sent: dict[str, Any], stored: Any, path: str, found: list[Difference], *,
                    top: bool) -> None:
    if not isinstance(stored, dict):
        found.append(Difference(path or "(record)", sent, stored))
        return
    for key, value in sent.items():
        if top and key in CONTROL_KEYS:
            continue
        where = _join(path, key)
        if key not in stored:
            if value is not None:
                found.append(Difference(where, value, absent=True))
            continue
        _compare(value, stored[key], where, found)


#: record types with something to read back
VERIFIABLE = frozenset({"order", "product", "contact"})

_PROFILE_FIELDS = ("customer_id", "prefix", "firstname", "middlename", "lastname", "gender",
                   "date_of_birth")
_PROFILE_DATES = {"timestamp_acquired": "acquired", "timestamp_subscribed": "marketing_optin",
                  "timestamp_unsubscribed": "marketing_optout"}


def contact_as_profile(contact: dict[str, Any]) -> dict[str, Any]:
    """The part of a contact listing its profile shows, under the profile's names."""
    view = {f: contact[f] for f in _PROFILE_FIELDS if f in contact}
    dates = {name: contact[f] for f, name in _PROFILE_DATES.items() if f in contact}
    if dates:
        view["dates"] = dates
    if isinstance(contact.get("properties"), dict):
        view["properties"] = contact["properties"]
    return view


def profile_emails(profile: dict[str, Any]) -> set[str]:
    emails = {str(profile["email"]).casefold()} if profile.get("email") else set()
    for identity in profile.get("identities") or []:
        if isinstance(identity, dict) and identity.get("type") == "email" and identity.get("id"):
            emails.add(str(identity["id"]).casefold())
    return emails


def profile_customer_ids(profile: dict[str, Any]) -> set[str]:
    ids = {str(profile["customer_id"])} if profile.get("customer_id") else set()
    for identity in profile.get("identities") or []:
        if (isinstance(identity, dict) and identity.get("type") == "customer_id"
                and identity.get("id")):
            ids.add(str(identity["id"]))
    return ids


def compare_contact(contact: dict[str, Any], profile: dict[str, Any]) -> list[Difference]:
    """Differences between a listing and the profile found for it (paths ``profile.*``)."""
    found = [Difference(f"profile.{d.path}", d.sent, d.stored, d.absent)
             for d in compare(contact_as_profile(contact), profile)]
    email = contact.get("email")
    if isinstance(email, str) and email.strip().casefold() not in profile_emails(profile):
        found.insert(0, Difference("profile.email", email, profile.get("email")))
    return found


def compare_record(record_type: str, sent: dict[str, Any],
                   stored: dict[str, Any]) -> list[Difference]:
    if record_type == "contact":
        return compare_contact(sent, stored)
    return compare(sent, stored)


class ProfileIndex:
    """Profiles from list pages, found by customer id, then by email."""

    def __init__(self) -> None:
        self.by_customer: dict[str, dict[str, Any]] = {}
        self.by_email: dict[str, dict[str, Any]] = {}

    def add(self, profile: dict[str, Any]) -> None:
        for cid in profile_customer_ids(profile):
            self.by_customer.setdefault(cid, profile)
        for email in profile_emails(profile):
            self.by_email.setdefault(email, profile)

    def find(self, contact: dict[str, Any]) -> dict[str, Any] | None:
        cid = contact.get("customer_id")
        if isinstance(cid, str) and cid in self.by_customer:
            return self.by_customer[cid]
        email = contact.get("email")
        if isinstance(email, str):
            return self.by_email.get(email.strip().casefold())
        return None
