"""What the read endpoints show, as the seed documents describe it: Profile objects (seed 000)
built from the imported contacts and orders, and Order objects (seed 003) as Ometria returns
them.

Ometria normalises what it stores, and the views do the same, so that a reader must compare by
meaning: timestamps come back in UTC (``+00:00``), email addresses in lower case, and orders
carry a field Ometria derives (``total_unit_quantity``). Profiles cluster contact listings by
``customer_id``, then by email; a profile's id is opaque (not the customer id), as Ometria's is.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from typing import Any

from ometria_sync.emulator.store import EmulatorStore


def utc_text(value: Any) -> Any:
    """A timestamp with an offset, rewritten in UTC; anything else unchanged."""
    if not isinstance(value, str):
        return value
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    if parsed.tzinfo is None:
        return value
    return parsed.astimezone(dt.UTC).isoformat()


def _email(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def order_view(order: dict[str, Any]) -> dict[str, Any]:
    """An imported order as ``GET /orders`` shows it."""
    view = dict(order)
    if "timestamp" in view:
        view["timestamp"] = utc_text(view["timestamp"])
    customer = view.get("customer")
    if isinstance(customer, dict) and "email" in customer:
        view["customer"] = dict(customer, email=_email(customer["email"]))
    items = view.get("lineitems")
    if isinstance(items, list):
        view["total_unit_quantity"] = sum(
            i.get("quantity") or 0 for i in items
            if isinstance(i, dict) and isinstance(i.get("quantity"), int))
    return view


def profile_id(cluster_key: str) -> str:
    """Opaque and stable, shaped like Ometria's (``2695-c473e2-4aaf58``)."""
    digest = hashlib.blake2b(cluster_key.encode(), digest_size=8).hexdigest()
    return f"{digest[:4]}-{digest[4:10]}-{digest[10:16]}"


def _cluster_key(contact: dict[str, Any]) -> str | None:
    if contact.get("customer_id"):
        return f"customer:{contact['customer_id']}"
    if contact.get("email"):
        return f"email:{str(contact['email']).lower()}"
    return None


def _order_owner(order: dict[str, Any]) -> list[str]:
    customer = order.get("customer") or {}
    keys = []
    if isinstance(customer, dict):
        if customer.get("id"):
            keys.append(f"customer:{customer['id']}")
        if customer.get("email"):
            keys.append(f"email:{str(customer['email']).lower()}")
    return keys


class _Cluster:
    def __init__(self, key: str) -> None:
        self.key = key
        self.listings: list[dict[str, Any]] = []
        self.orders: list[dict[str, Any]] = []
        self.updated = 0.0


def build_profiles(
    contacts: Iterable[tuple[dict[str, Any], float]],
    orders: Iterable[tuple[dict[str, Any], float]],
) -> list[tuple[dict[str, Any], float]]:
    """``(profile, updated_at)`` for each cluster of listings, in the order clusters formed.
    ``contacts`` and ``orders`` are imported records with their import times."""
    clusters: dict[str, _Cluster] = {}
    email_to_key: dict[str, str] = {}
    # listings with a customer_id first, so an email-only listing joins its customer's profile
    # whatever order the two were imported in
    for contact, updated in sorted(contacts, key=lambda c: not c[0].get("customer_id")):
        key = _cluster_key(contact)
        if key is None:
            continue
        email = str(contact.get("email") or "").lower()
        if key.startswith("email:") and email in email_to_key:
            key = email_to_key[email]
        cluster = clusters.setdefault(key, _Cluster(key))
        cluster.listings.append(contact)
        cluster.updated = max(cluster.updated, updated)
        if email:
            email_to_key.setdefault(email, key)
    for order, updated in orders:
        for owner in _order_owner(order):
            owner = email_to_key.get(owner[6:], owner) if owner.startswith("email:") else owner
            if owner in clusters:
                clusters[owner].orders.append(order)
                clusters[owner].updated = max(clusters[owner].updated, updated)
                break
    return [(_profile(c), c.updated) for c in clusters.values()]


def _first(listings: list[dict[str, Any]], field: str, *, earliest: bool = False) -> Any:
    """The first listing's value of a timestamp field (or the earliest), in UTC."""
    values = [utc_text(c[field]) for c in listings if c.get(field) is not None]
    if not values:
        return None
    return min(values) if earliest else values[0]


def _identities(listings: list[dict[str, Any]]) -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    for contact in listings:
        for kind, value in (("customer_id", contact.get("customer_id")),
                            ("email", _email(contact.get("email")))):
            item = {"id": str(value), "type": kind}
            if value and item not in found:
                found.append(item)
    return found


def _profile(cluster: _Cluster) -> dict[str, Any]:
    listings = cluster.listings
    first = listings[0]
    properties: dict[str, Any] = {}
    for contact in reversed(listings):  # the first listing's values win
        if isinstance(contact.get("properties"), dict):
            properties.update(contact["properties"])
    valid = [o for o in cluster.orders if o.get("is_valid") is not False]
    revenue = round(sum(float(o.get("grand_total") or 0) for o in valid), 2)
    bought = sorted(utc_text(o["timestamp"]) for o in valid if o.get("timestamp"))
    items = sum(i.get("quantity") or 0 for o in valid for i in o.get("lineitems") or []
                if isinstance(i, dict) and isinstance(i.get("quantity"), int))
    names = [first.get("firstname"), first.get("lastname")]
    return {
        "@type": "profile",
        "id": profile_id(cluster.key),
        "customer_id": next((c["customer_id"] for c in listings if c.get("customer_id")), None),
        "email": _email(first.get("email")),
        "prefix": first.get("prefix"),
        "firstname": first.get("firstname"),
        "middlename": first.get("middlename"),
        "lastname": first.get("lastname"),
        "suffix": None,
        "name": " ".join(n for n in names if n) or None,
        "gender": first.get("gender"),
        "date_of_birth": first.get("date_of_birth"),
        "country": first.get("country_id"),
        "marketing_optin": first.get("marketing_optin"),
        "dates": {
            "acquired": _first(listings, "timestamp_acquired", earliest=True),
            "first_purchase": bought[0] if bought else None,
            "last_purchase": bought[-1] if bought else None,
            "first_seen": None,
            "last_seen": None,
            "marketing_optin": _first(listings, "timestamp_subscribed"),
            "marketing_optout": _first(listings, "timestamp_unsubscribed"),
        },
        "identities": _identities(listings),
        "lists": [],
        "properties": properties,
        "seen": False,
        "stats": {
            "aov": round(revenue / len(valid), 2) if valid else 0,
            "orders": len(valid),
            "orders_attempted": len(cluster.orders),
            "revenue": revenue,
            "total_items": items,
            "visits": 0,
        },
        "tags": [],
    }


class ProfileView:
    """The profiles built from the store, rebuilt only after an import changed it."""

    def __init__(self, store: EmulatorStore) -> None:
        self._store = store
        self._version = -1
        self.profiles: list[tuple[dict[str, Any], float]] = []
        self.by_id: dict[str, dict[str, Any]] = {}
        self.by_email: dict[str, dict[str, Any]] = {}

    def refresh(self) -> ProfileView:
        store = self._store
        if store.version != self._version:
            def timed(rtype: str) -> list[tuple[dict[str, Any], float]]:
                return [(record, store.updated_at.get((rtype, key), 0.0))
                        for key, record in store.table(rtype).items()]

            self.profiles = build_profiles(timed("contact"), timed("order"))
            self.by_id = {p["id"]: p for p, _ in self.profiles}
            self.by_email = {}
            for profile, _ in self.profiles:
                for identity in profile["identities"]:
                    if identity["type"] == "email":
                        self.by_email.setdefault(identity["id"], profile)
            self._version = store.version
        return self
