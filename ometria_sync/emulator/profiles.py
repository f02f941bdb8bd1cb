"""Profiles as Ometria shows them: contacts clustered by customer_id, then by email, with
order stats from valid orders (seed 000's Profile object, the fields the emulator can know)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


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


def build_profiles(
    contacts: Iterable[dict[str, Any]], orders: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    clusters: dict[str, list[dict[str, Any]]] = {}
    email_to_key: dict[str, str] = {}
    # listings with a customer_id first, so an email-only listing joins its customer's profile
    # whatever order the two were imported in
    for contact in sorted(contacts, key=lambda c: not c.get("customer_id")):
        key = _cluster_key(contact)
        if key is None:
            continue
        email = str(contact.get("email") or "").lower()
        if key.startswith("email:") and email in email_to_key:
            key = email_to_key[email]
        clusters.setdefault(key, []).append(contact)
        if email:
            email_to_key.setdefault(email, key)
    stats: dict[str, list[float]] = {}
    for order in orders:
        if order.get("is_valid") is False:
            continue
        for owner in _order_owner(order):
            owner = email_to_key.get(owner[6:], owner) if owner.startswith("email:") else owner
            if owner in clusters:
                stats.setdefault(owner, []).append(float(order.get("grand_total") or 0))
                break
    return [_profile(key, listings, stats.get(key, [])) for key, listings in clusters.items()]


def _profile(key: str, listings: list[dict[str, Any]], totals: list[float]) -> dict[str, Any]:
    first = listings[0]
    return {
        "id": key.split(":", 1)[1],
        "email": first.get("email"),
        "customer_id": first.get("customer_id"),
        "firstname": first.get("firstname"),
        "lastname": first.get("lastname"),
        "marketing_optin": first.get("marketing_optin"),
        "identities": [{"collection": c.get("@collection") or "default", "id": c.get("id"),
                        "email": c.get("email")} for c in listings],
        "stats": {"orders_count": len(totals), "orders_total": round(sum(totals), 2),
                  "orders_average": round(sum(totals) / len(totals), 2) if totals else 0},
        "properties": first.get("properties") or {},
    }
