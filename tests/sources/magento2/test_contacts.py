"""The magento2 preset's contacts against a generated Magento database: customers, guest
subscribers, each part emitting whole contacts as the contract's rules give them (tests/
sources/magento2/expected.py), store views limiting what is read, a part resumed."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from ometria_sync.sources.base import SourceItem
from ometria_sync.sources.magento2 import Magento2SourceConfig
from tests.magento2 import ZERO, People, Shop, create_schema, seed_contacts, seed_stores
from tests.mysql import Database
from tests.sources.magento2.expected import contact_records

pytestmark = pytest.mark.mysql


@pytest.fixture(autouse=True)
def _dsn(monkeypatch: pytest.MonkeyPatch, my_db: Database) -> None:
    monkeypatch.setenv("MAGENTO_DSN", my_db.dsn)


def settings(**options: Any) -> Magento2SourceConfig:
    return msgspec.convert({"kind": "magento2", "entity": "contacts",
                            "dsn_env": "MAGENTO_DSN", "page_size": 23, **options},
                           Magento2SourceConfig)


async def read(config: Magento2SourceConfig, starts: dict[str, Any] | None = None
               ) -> dict[str, list[SourceItem]]:
    """Each part's items, by the part's key."""
    got: dict[str, list[SourceItem]] = {}
    for part in await config.open().parts():
        items = got.setdefault(part.key, [])
        async for chunk in part.read((starts or {}).get(part.key)):
            items += chunk
    return got


async def shop(db: Database, count: int) -> tuple[Shop, People]:
    await create_schema(db)
    model = await seed_stores(db)
    return model, await seed_contacts(db, count)


def _records(items: list[SourceItem]) -> dict[str, dict[str, Any]]:
    assert [i.error for i in items if i.error] == []
    return {i.record["id"]: i.record for i in items}


@pytest.mark.parametrize("store_ids", [None, [3], [1, 5]])
async def test_each_part_emits_whole_contacts_as_the_contract_computes(
        my_db: Database, store_ids: list[int] | None) -> None:
    model, people = await shop(my_db, 240)
    expected = contact_records(model, people, store_ids)
    parts = await read(settings(store_ids=store_ids))
    assert list(parts) == ["customers", "addresses", "subscribers"]
    customers = _records(parts["customers"])
    assert customers == {k: v for k, v in expected.items() if "customer_id" in v}
    addresses = _records(parts["addresses"])
    assert set(addresses) == {str(c.entity_id) for c in people.customers.values()
                              if c.default_billing in people.addresses
                              and str(c.entity_id) in expected}
    assert addresses == {k: expected[k] for k in addresses}
    subscribers = _records(parts["subscribers"])
    owners = {str(s.customer_id) for s in people.subscribers.values()
              if store_ids is None or s.store_id in store_ids}
    assert set(subscribers) == {k for k, v in expected.items()
                                if "customer_id" not in v or k in owners}
    assert subscribers == {k: expected[k] for k in subscribers}


async def test_the_generated_people_hold_the_cases_the_rules_are_about(
        my_db: Database) -> None:
    model, people = await shop(my_db, 240)
    records = list(contact_records(model, people).values())
    for field, values in (("gender", {"m", "f"}), ("marketing_optin", {
            "EXPLICITLY_OPTEDIN", "EXPLICITLY_OPTEDOUT", "NOT_SPECIFIED"})):
        assert {r[field] for r in records if field in r} == values
    assert any("gender" not in r and "customer_id" in r for r in records)
    assert any("timestamp_acquired" not in r and "customer_id" in r for r in records)
    assert {r.get("phone_number") for r in records} >= {"+442079460958", "+33123456789", None}
    assert any(r["id"].startswith("subscriber-") for r in records)
    assert any("timestamp_subscribed" in r for r in records)
    assert any(r.get("marketing_optin") == "EXPLICITLY_OPTEDIN"
               and "timestamp_subscribed" not in r for r in records)  # a NULL change date


async def test_an_address_edit_alone_is_sent_by_the_addresses_part(my_db: Database) -> None:
    """Magento saves an address without touching its customer: the customers part resumed
    finds nothing new, the addresses part emits the customer with the new phone."""
    _, people = await shop(my_db, 60)
    config = settings(lookback_seconds=0)
    first = await read(config)
    starts = {k: v[-1].position for k, v in first.items()}
    customer = next(c for c in people.customers.values()
                    if c.default_billing in people.addresses)
    await my_db.execute("UPDATE customer_address_entity SET telephone = '+1 (415) 555-0100', "
                        "updated_at = '2030-01-01 00:00:00' WHERE entity_id = %s",
                        customer.default_billing)
    again = await read(config, starts)
    assert again["customers"] == [] and again["subscribers"] == []
    (item,) = again["addresses"]
    assert item.record["id"] == str(customer.entity_id)
    assert item.record["phone_number"] == "+14155550100"
    assert item.position == {"after": ["2030-01-01T00:00:00", str(customer.default_billing)]}


async def test_zero_and_null_timestamps_count_as_1970_in_a_key(my_db: Database) -> None:
    """A customer whose updated_at is the zero date, a subscriber whose change_status_at is
    NULL: first in their part, at 1970-01-01 00:00:00."""
    _, people = await shop(my_db, 60)
    parts = await read(settings())
    zero = min(c.entity_id for c in people.customers.values() if c.updated_at == ZERO)
    assert parts["customers"][0].position == {"after": ["1970-01-01T00:00:00", str(zero)]}
    null = min(s.subscriber_id for s in people.subscribers.values()
               if s.change_status_at in (None, ZERO))
    assert parts["subscribers"][0].position == {"after": ["1970-01-01T00:00:00", str(null)]}
