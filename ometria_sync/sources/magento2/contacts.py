"""Contacts (``entity = "contacts"``, the contract's section 5): one contact per
``customer_entity`` row and one per guest ``newsletter_subscriber`` row, each whole (with
``@merge``: Ometria keeps what other sources told it).

Three parts, each its own checkpoint, because Magento writes each table alone (an address
edit, the newsletter flow): customers by ``(updated_at, entity_id)``; addresses by
``(updated_at, entity_id)``, each emitting the customer whose default billing address it is
(an address that is nobody's is not read); subscribers by ``(change_status_at,
subscriber_id)`` (NULL as 1970-01-01), each emitting its guest contact or its customer's.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from ometria_sync.sources.keyset import Row
from ometria_sync.sources.magento2.database import Select
from ometria_sync.sources.magento2.reader import PartPlan, epoch_key
from ometria_sync.sources.magento2.settings import Magento2Settings
from ometria_sync.sources.magento2.stores import Stores, load_stores
from ometria_sync.sources.magento2.values import day, key, put, stamp, text

GENDERS = {1: "m", 2: "f"}
#: subscriber_status -> (marketing_optin, the timestamp field it sets)
STATUSES: dict[int, tuple[str, str | None]] = {
    1: ("EXPLICITLY_OPTEDIN", "timestamp_subscribed"),
    3: ("EXPLICITLY_OPTEDOUT", "timestamp_unsubscribed")}
UNKNOWN_STATUS = ("NOT_SPECIFIED", None)
_PHONE_NOISE = re.compile(r"[ \-.()]")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_NAMES = ("prefix", "firstname", "middlename", "lastname")


class Subscriber(msgspec.Struct, frozen=True):
    subscriber_id: int
    status: int
    changed: Any
    store_id: int | None
    email: Any = None


class Customer(msgspec.Struct):
    """A customer row with its billing address and its subscriber rows."""

    row: dict[str, Any]
    country_id: Any = None
    telephone: Any = None
    subscribers: list[Subscriber] = msgspec.field(default_factory=list)


def phone(value: Any) -> str | None:
    """The telephone as E.164, or None when it is not one after removing spaces, ``-``,
    ``.``, ``(``, ``)`` and making a leading ``00`` a ``+``."""
    number = text(value)
    if number is None:
        return None
    number = _PHONE_NOISE.sub("", number)
    if number.startswith("00"):
        number = "+" + number[2:]
    return number if _E164.fullmatch(number) else None


def chosen(rows: list[Subscriber]) -> Subscriber | None:
    """The row with status 1 if any, else status 3, else any; ties: highest subscriber_id."""
    if not rows:
        return None
    rank = {1: 2, 3: 1}
    return max(rows, key=lambda s: (rank.get(s.status, 0), s.subscriber_id))


def _subscription(record: dict[str, Any], row: Subscriber | None) -> None:
    if row is None:
        return
    optin, field = STATUSES.get(row.status, UNKNOWN_STATUS)
    record["marketing_optin"] = optin
    if field is not None:
        put(record, field, stamp(row.changed))


class Contacts:
    """Gathers and builds contacts (an :class:`~.database.Assembler`) for any of the parts:
    a row with ``customer_id`` is that customer, one without is a guest subscriber."""

    def __init__(self, settings: Magento2Settings, stores: Stores) -> None:
        self._settings = settings
        self._views = {v for v in stores.views if settings.selected(v)}

    async def gather(self, select: Select, rows: list[dict[str, Any]]) -> None:
        table = self._settings.table
        ids = sorted({int(r["customer_id"]) for r in rows if r["customer_id"] is not None})
        customers: dict[int, Customer] = {}
        if ids:
            marks = ", ".join(["%s"] * len(ids))
            names = ("entity_id", "email", *_NAMES, "gender", "dob", "created_at", "store_id",
                     "default_billing")
            for values in await select(f"SELECT {', '.join(names)} FROM "
                                       f"{table('customer_entity')} WHERE entity_id IN "
                                       f"({marks})", ids):
                row = dict(zip(names, values, strict=True))
                customers[int(row["entity_id"])] = Customer(row)
            billing = {int(c.row["default_billing"]): c for c in customers.values()
                       if c.row["default_billing"] is not None}
            if billing:
                for address_id, country, telephone in await select(
                        f"SELECT entity_id, country_id, telephone FROM "
                        f"{table('customer_address_entity')} WHERE entity_id IN "
                        f"({', '.join(['%s'] * len(billing))})", sorted(billing)):
                    found = billing[int(address_id)]
                    found.country_id, found.telephone = country, telephone
            for sid, cid, status, changed, store in await select(
                    f"SELECT subscriber_id, customer_id, subscriber_status, change_status_at, "
                    f"store_id FROM {table('newsletter_subscriber')} WHERE customer_id IN "
                    f"({marks}){self._store_filter()}", ids):
                customers[int(cid)].subscribers.append(
                    Subscriber(int(sid), int(status), changed, _int(store)))
        for row in rows:
            cid = row["customer_id"]
            row["contact"] = customers.get(int(cid)) if cid is not None else None

    def _store_filter(self) -> str:
        store_ids = self._settings.store_ids
        return "" if store_ids is None else f" AND store_id IN ({', '.join(map(str, store_ids))})"

    def record_id(self, row: Row) -> str | None:
        if row["customer_id"] is not None:
            return key(row["customer_id"])
        return f"subscriber-{int(row['subscriber_id'])}"

    def record(self, row: Row) -> dict[str, Any]:
        customer: Customer | None = row["contact"]
        if row["customer_id"] is None:
            return self._guest(row)
        if customer is None:
            raise ValueError(f"customer {row['customer_id']} was deleted while it was read")
        return self._customer(customer)

    def _stores(self, store_id: Any) -> list[str] | None:
        store = _int(store_id)
        return [str(store)] if store is not None and store in self._views else None

    def _customer(self, customer: Customer) -> dict[str, Any]:
        row = customer.row
        record: dict[str, Any] = {"@type": "contact", "@merge": True,
                                  "id": key(row["entity_id"]),
                                  "customer_id": key(row["entity_id"])}
        put(record, "email", text(row["email"]))
        for name in _NAMES:
            put(record, name, text(row[name]))
        put(record, "gender", GENDERS.get(_int(row["gender"]) or 0))
        put(record, "date_of_birth", day(row["dob"]))
        put(record, "timestamp_acquired", stamp(row["created_at"]))
        put(record, "country_id", text(customer.country_id))
        put(record, "phone_number", phone(customer.telephone))
        put(record, "store_ids", self._stores(row["store_id"]))
        _subscription(record, chosen(customer.subscribers))
        return record

    def _guest(self, row: Row) -> dict[str, Any]:
        record: dict[str, Any] = {"@type": "contact", "@merge": True,
                                  "id": f"subscriber-{int(row['subscriber_id'])}"}
        put(record, "email", text(row["subscriber_email"]))
        put(record, "store_ids", self._stores(row["store_id"]))
        _subscription(record, Subscriber(int(row["subscriber_id"]),
                                         int(row["subscriber_status"]),
                                         row["change_status_at"], _int(row["store_id"])))
        return record


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


async def open_contacts(select: Select, settings: Magento2Settings) -> Contacts:
    return Contacts(settings, await load_stores(select, settings.table, configuration=False))


def websites(settings: Magento2Settings, column: str) -> str:
    """``AND column IN (the listed views' websites)`` (nothing without ``store_ids``)."""
    if settings.store_ids is None:
        return ""
    views = ", ".join(map(str, settings.store_ids))
    return (f" AND {column} IN (SELECT website_id FROM {settings.table('store')} "
            f"WHERE store_id IN ({views}))")


def guests_where() -> str:
    """The subscribers read as guests (``s``, with their customer ``c`` joined): no customer
    and an email."""
    return "c.entity_id IS NULL AND TRIM(COALESCE(s.subscriber_email, '')) <> ''"


def contact_parts(settings: Magento2Settings) -> list[PartPlan]:
    """Customers, addresses, subscribers (see the module doc)."""
    t = settings.table
    customers = (f"SELECT * FROM (SELECT {epoch_key('c.updated_at')} AS changed, c.entity_id, "
                 f"c.entity_id AS customer_id FROM {t('customer_entity')} AS c WHERE 1 = 1"
                 f"{websites(settings, 'c.website_id')}) AS k WHERE {{cursor_after}}")
    addresses = (f"SELECT * FROM (SELECT {epoch_key('a.updated_at')} AS changed, a.entity_id, "
                 f"c.entity_id AS customer_id FROM {t('customer_address_entity')} AS a "
                 f"JOIN {t('customer_entity')} AS c "
                 f"ON c.default_billing = a.entity_id{websites(settings, 'c.website_id')}"
                 ") AS k WHERE {cursor_after}")
    stores = ("" if settings.store_ids is None else
              f" AND s.store_id IN ({', '.join(map(str, settings.store_ids))})")
    subscribers = (
        f"SELECT * FROM (SELECT {epoch_key('s.change_status_at')} AS changed, s.subscriber_id, "
        "c.entity_id AS customer_id, s.subscriber_email, s.subscriber_status, "
        f"s.change_status_at, s.store_id FROM {t('newsletter_subscriber')} AS s LEFT JOIN "
        f"{t('customer_entity')} AS c ON c.entity_id = s.customer_id WHERE ({guests_where()} "
        "OR c.entity_id IS NOT NULL"
        f"{websites(settings, 'c.website_id')}){stores}) AS k WHERE {{cursor_after}}")
    return [PartPlan("customers", customers, ["changed", "entity_id"], open_contacts,
                     timed=True),
            PartPlan("addresses", addresses, ["changed", "entity_id"], open_contacts,
                     timed=True),
            PartPlan("subscribers", subscribers, ["changed", "subscriber_id"], open_contacts,
                     timed=True)]
