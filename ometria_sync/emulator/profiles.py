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
from typing import Any

import msgspec

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


def _cluster_key(customer_id: Any, email: Any) -> str | None:
    if customer_id:
        return f"customer:{customer_id}"
    if email:
        return f"email:{str(email).lower()}"
    return None


def _order_owner(customer: Any) -> list[str]:
    keys = []
    if isinstance(customer, dict):
        if customer.get("id"):
            keys.append(f"customer:{customer['id']}")
        if customer.get("email"):
            keys.append(f"email:{str(customer['email']).lower()}")
    return keys


class _Who(msgspec.Struct):
    """What clustering reads of a contact (other fields are skipped undecoded)."""

    customer_id: Any = None
    email: Any = None


class _Buyer(msgspec.Struct):
    """What clustering reads of an order."""

    customer: Any = None


class _Cluster:
    """One profile as store keys: its listings and orders are decoded only to show it."""

    __slots__ = ("key", "listings", "orders", "updated")

    def __init__(self, key: str) -> None:
        self.key = key
        self.listings: list[str] = []
        self.orders: list[str] = []
        self.updated = 0.0


def _clusters(store: EmulatorStore) -> list[_Cluster]:
    """The clusters of the store's imported contacts and orders, in the order they formed.
    Listings with a customer_id come first, so an email-only listing joins its customer's
    profile whatever order the two were imported in. Holds keys, not records: a store of
    millions of contacts is clustered in memory proportional to its keys."""
    clusters: dict[str, _Cluster] = {}
    email_to_key: dict[str, str] = {}
    who = msgspec.json.Decoder(_Who).decode
    contacts = store.raw_items("contact")
    updated_at = store.updated_at
    for with_customer in (True, False):
        for name, raw in contacts:
            contact = who(raw)
            if bool(contact.customer_id) is not with_customer:
                continue
            key = _cluster_key(contact.customer_id, contact.email)
            if key is None:
                continue
            email = str(contact.email or "").lower()
            if key.startswith("email:") and email in email_to_key:
                key = email_to_key[email]
            cluster = clusters.get(key)
            if cluster is None:
                cluster = clusters[key] = _Cluster(key)
            cluster.listings.append(name)
            cluster.updated = max(cluster.updated, updated_at.get(("contact", name), 0.0))
            if email:
                email_to_key.setdefault(email, key)
    buyer = msgspec.json.Decoder(_Buyer).decode
    for name, raw in store.raw_items("order"):
        for owner in _order_owner(buyer(raw).customer):
            owner = email_to_key.get(owner[6:], owner) if owner.startswith("email:") else owner
            if owner in clusters:
                found = clusters[owner]
                found.orders.append(name)
                found.updated = max(found.updated, updated_at.get(("order", name), 0.0))
                break
    return list(clusters.values())


def build_profiles(store: EmulatorStore) -> list[tuple[dict[str, Any], float]]:
    """``(profile, updated_at)`` for each cluster of the store's listings, in the order
    clusters formed (every profile decoded: for tests and small stores)."""
    return [(show_profile(store, c), c.updated) for c in _clusters(store)]


def show_profile(store: EmulatorStore, cluster: _Cluster) -> dict[str, Any]:
    """The profile of ``cluster`` as the read endpoints show it."""
    listings = [store.get("contact", k) for k in cluster.listings]
    orders = [store.get("order", k) for k in cluster.orders]
    return _profile(cluster.key, [c for c in listings if c is not None],
                    [o for o in orders if o is not None])


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


def _profile(key: str, listings: list[dict[str, Any]],
             orders: list[dict[str, Any]]) -> dict[str, Any]:
    first = listings[0]
    properties: dict[str, Any] = {}
    for contact in reversed(listings):  # the first listing's values win
        if isinstance(contact.get("properties"), dict):
            properties.update(contact["properties"])
    valid = [o for o in orders if o.get("is_valid") is not False]
    revenue = round(sum(float(o.get("grand_total") or 0) for o in valid), 2)
    bought = sorted(utc_text(o["timestamp"]) for o in valid if o.get("timestamp"))
    items = sum(i.get("quantity") or 0 for o in valid for i in o.get("lineitems") or []
                if isinstance(i, dict) and isinstance(i.get("quantity"), int))
    names = [first.get("firstname"), first.get("lastname")]
    return {
        "@type": "profile",
        "id": profile_id(key),
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
            "orders_attempted": len(orders),
            "revenue": revenue,
            "total_items": items,
            "visits": 0,
        },
        "tags": [],
    }


class ProfileView:
    """The store's profiles, clustered again only after an import changed the store. Pages
    and look-ups decode only the profiles they show, so a store of millions of contacts is
    served page by page without a copy of every profile in memory."""

    def __init__(self, store: EmulatorStore) -> None:
        self._store = store
        self._version = -1
        self._clusters: list[_Cluster] = []
        self._by_id: dict[str, _Cluster] | None = None
        self._by_email: dict[str, _Cluster] | None = None

    def refresh(self) -> ProfileView:
        store = self._store
        if store.version != self._version:
            self._clusters = _clusters(store)
            self._by_id = self._by_email = None  # built on the first look-up
            self._version = store.version
        return self

    def page(self, offset: int, limit: int, since: float | None = None) -> list[dict[str, Any]]:
        """Profiles ``offset`` to ``offset + limit`` in the order they formed (``since``: only
        those updated at or after that POSIX time)."""
        clusters = self._clusters
        if since is not None:
            clusters = [c for c in clusters if c.updated >= since]
        return [show_profile(self._store, c) for c in clusters[offset:offset + limit]]

    def by_id(self, profile: str) -> dict[str, Any] | None:
        if self._by_id is None:
            self._by_id = {profile_id(c.key): c for c in self._clusters}
        found = self._by_id.get(profile)
        return None if found is None else show_profile(self._store, found)

    def by_email(self, email: str) -> dict[str, Any] | None:
        """The first profile one of whose listings has this (lower-case) email."""
        if self._by_email is None:
            self._by_email = {}
            who = msgspec.json.Decoder(_Who).decode
            table = self._store.raw_table("contact")
            for cluster in self._clusters:
                for name in cluster.listings:
                    value = _email(who(table[name]).email)
                    if value:
                        self._by_email.setdefault(str(value), cluster)
        found = self._by_email.get(email)
        return None if found is None else show_profile(self._store, found)
