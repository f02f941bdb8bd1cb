"""Per record type: where Ometria shows a record again, and how to compare it.

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

from typing import Any

from ometria_sync.verify.compare import Difference, compare

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
